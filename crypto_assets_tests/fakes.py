"""Test doubles shared by the HTTP and provider tests."""


class FakeTime:
    """Monotonic clock + sleep that only advances the clock and records each wait (no real waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
