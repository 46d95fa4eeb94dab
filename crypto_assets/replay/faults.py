"""Fault injection for the replay server: what goes wrong, decided deterministically.

A fault decision depends only on ``(seed, provider, n)`` where ``n`` counts the provider's requests since the
configuration was set, so a test (or a bug report) can replay the exact same sequence.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

from crypto_assets.errors import ConfigError
from crypto_assets.symbols import validate_symbol

FAULT_KINDS: tuple[str, ...] = ("429", "5xx", "slow", "truncated", "html")
# "slow" is opt-in: it makes every faulted request take slow_seconds.
DEFAULT_KINDS: tuple[str, ...] = ("429", "5xx", "truncated", "html")
CORRUPTIONS: tuple[str, ...] = (
    "duplicates",
    "out_of_order",
    "gap",
    "high_lt_low",
    "junk_strings",
    "nan_close",
    "negative_price",
    "conflicting_duplicate",
)

GAP_HOUR = 13  # "gap": the 13:00 UTC bar of every day is left out
DUPLICATE_HOUR = 7  # "duplicates": the 07:00 UTC bar of every day is sent twice
SERVER_ERROR_STATUSES: tuple[int, ...] = (500, 502, 503, 504)


def _replayed(kind: str | None = None) -> tuple[str, ...]:
    """Providers the replay server speaks (of ``kind``), from the registry."""
    from crypto_assets.providers import registry

    specs = registry.all_providers() if kind is None else registry.providers_of(kind)
    return tuple(spec.name for spec in specs if spec.replay is not None)


@dataclass
class FaultConfig:
    """What the replay server does wrong. JSON round-trips through ``to_dict``/``from_dict``.

    Besides random faults: ``down`` providers answer 503 to everything, ``geo_blocked`` ones 451,
    ``require_keys`` ones 401 to a request without credentials (as CryptoCompare since 2026-05-21), and
    ``shed_load`` maps a provider to the share of its requests answered 429 (as GDELT sheds load).

    The market as messy as it is: ``listings`` / ``delistings`` map a symbol to its first / last day with bars
    (at every provider); ``holes`` removes hours from providers' answers (``{"symbol": "BTC", "start":
    "2022-05-11T10:00", "hours": 3, "providers": ["binance"]}``, every provider when ``providers`` is empty);
    ``corrupt`` keys are a provider (every symbol) or ``provider:SYMBOL``.
    """

    rate: float = 0.0
    kinds: list[str] = field(default_factory=lambda: list(DEFAULT_KINDS))
    slow_seconds: float = 6.0
    down: list[str] = field(default_factory=list)
    down_days: list[str] = field(default_factory=list)
    corrupt: dict[str, list[str]] = field(default_factory=dict)
    seed: int = 0
    geo_blocked: list[str] = field(default_factory=list)
    require_keys: list[str] = field(default_factory=list)
    shed_load: dict[str, float] = field(default_factory=dict)
    listings: dict[str, str] = field(default_factory=dict)
    delistings: dict[str, str] = field(default_factory=dict)
    holes: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def live_like(cls, seed: int = 0) -> FaultConfig:
        """The providers as they behave in late 2026: some faults, key-only providers demanding a key (401),
        GDELT shedding a third of its requests (429)."""
        from crypto_assets.providers import registry

        keyed = [spec.name for spec in registry.all_providers() if spec.key_required and spec.replay is not None]
        shed = {"gdelt": 0.3} if "gdelt" in _replayed() else {}
        return cls(rate=0.05, require_keys=keyed, shed_load=shed, seed=seed)

    def __post_init__(self) -> None:
        try:
            self.rate = float(self.rate)
            self.slow_seconds = float(self.slow_seconds)
            self.seed = int(self.seed)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"fault config: rate, slow_seconds and seed must be numbers ({exc})") from None
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"fault rate {self.rate} is outside [0, 1]")
        if self.slow_seconds < 0:
            raise ConfigError(f"slow_seconds {self.slow_seconds} is negative")
        self.kinds = _subset("fault kind", self.kinds, FAULT_KINDS)
        if self.rate > 0 and not self.kinds:
            raise ConfigError("fault rate > 0 needs at least one fault kind")
        providers = _replayed()
        self.down = _subset("down provider", self.down, providers)
        self.geo_blocked = _subset("geo-blocked provider", self.geo_blocked, providers)
        self.require_keys = _subset("key-demanding provider", self.require_keys, providers)
        if not isinstance(self.shed_load, dict):
            raise ConfigError("shed_load must map a provider to the share of requests answered 429")
        shed: dict[str, float] = {}
        for provider, share in self.shed_load.items():
            _subset("load-shedding provider", [provider], providers)
            try:
                shed[provider] = float(share)
            except (TypeError, ValueError):
                raise ConfigError(f"shed_load {provider}: {share!r} is not a number") from None
            if not 0.0 <= shed[provider] <= 1.0:
                raise ConfigError(f"shed_load {provider}: {share} is outside [0, 1]")
        self.shed_load = shed
        days = []
        for day in _as_list("down_days", self.down_days):
            try:
                days.append(date.fromisoformat(str(day)).isoformat())
            except ValueError:
                raise ConfigError(f"down day {day!r} is not an ISO date such as 2022-05-10") from None
        self.down_days = days
        if not isinstance(self.corrupt, dict):
            raise ConfigError("corrupt must map a price provider to a list of corruptions")
        corrupt: dict[str, list[str]] = {}
        price_providers = _replayed("prices")
        for key, names in self.corrupt.items():
            provider, _, symbol = str(key).partition(":")
            if provider not in price_providers:
                raise ConfigError(
                    f"corrupt: unknown price provider {provider!r}; choose from {', '.join(price_providers)}"
                )
            if symbol:
                validate_symbol(symbol)
            corrupt[str(key)] = _subset(f"corruption for {key}", names, CORRUPTIONS)
        self.corrupt = corrupt
        for what, days in (("listings", self.listings), ("delistings", self.delistings)):
            if not isinstance(days, dict):
                raise ConfigError(f"{what} must map a symbol to an ISO day")
            for symbol, day in days.items():
                validate_symbol(symbol)
                try:
                    date.fromisoformat(str(day))
                except ValueError:
                    raise ConfigError(f"{what} {symbol}: {day!r} is not an ISO date such as 2022-05-10") from None
        holes = []
        for hole in _as_list("holes", self.holes):
            if not isinstance(hole, dict) or set(hole) - {"symbol", "start", "hours", "providers"}:
                raise ConfigError(f"hole {hole!r}: expected symbol, start, hours and optionally providers")
            validate_symbol(str(hole.get("symbol", "")))
            try:
                start = datetime.fromisoformat(str(hole["start"])).replace(tzinfo=UTC)
                hours = int(hole["hours"])
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"hole {hole!r}: start is an ISO hour (2022-05-11T10:00), hours an integer") from None
            if start.minute or start.second or hours < 1:
                raise ConfigError(f"hole {hole!r}: start must be on the hour and hours positive")
            providers = _subset("hole provider", hole.get("providers", []), price_providers)
            holes.append({"symbol": hole["symbol"], "start": start.strftime("%Y-%m-%dT%H:%M"), "hours": hours,
                          "providers": providers})  # fmt: skip
        self.holes = holes
        self._missing: dict[tuple[str, str], tuple[int | None, int | None, frozenset[int]]] = {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        if not isinstance(data, dict):
            raise ConfigError("fault config must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"fault config: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> FaultConfig:
        try:
            data = json.loads(text or "{}")
        except ValueError as exc:
            raise ConfigError(f"fault config is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def corruptions(self, provider: str, symbol: str) -> list[str]:
        """The corruptions of ``provider``'s answers for ``symbol``."""
        return [*self.corrupt.get(provider, []), *self.corrupt.get(f"{provider}:{symbol}", [])]

    def missing_opens(self, provider: str, symbol: str) -> tuple[int | None, int | None, frozenset[int]]:
        """(first, end) bounds in epoch seconds from the listing / delisting (None: unbounded) and the bar opens
        a hole removes from ``provider``'s answers for ``symbol``; worked out once per provider and symbol."""
        found = self._missing.get((provider, symbol))
        if found is None:
            first = _day_seconds(self.listings[symbol]) if symbol in self.listings else None
            end = _day_seconds(self.delistings[symbol]) + 86400 if symbol in self.delistings else None
            removed = frozenset(
                int(datetime.fromisoformat(hole["start"]).replace(tzinfo=UTC).timestamp()) + 3600 * h
                for hole in self.holes
                if hole["symbol"] == symbol and (not hole["providers"] or provider in hole["providers"])
                for h in range(hole["hours"])
            )
            found = self._missing[(provider, symbol)] = (first, end, removed)
        return found

    @cached_property
    def _down_ranges(self) -> list[tuple[int, int]]:
        """Each down day as ``[start_s, end_s)`` in epoch seconds (UTC)."""
        return [(start, start + 86400) for start in map(_day_seconds, self.down_days)]

    def overlaps_down_day(self, lo_s: int, hi_s: int) -> bool:
        """Whether bar opens in ``[lo_s, hi_s]`` touch a down day."""
        return any(lo_s < end and hi_s >= start for start, end in self._down_ranges)


def _day_seconds(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp())


def _as_list(what: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{what} must be a list")
    return list(value)


def _subset(what: str, values: Any, allowed: tuple[str, ...]) -> list[str]:
    result = []
    for value in _as_list(what, values):
        if str(value) not in allowed:
            raise ConfigError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")
        if str(value) not in result:
            result.append(str(value))
    return result


@dataclass(frozen=True)
class Fault:
    """One injected fault: its kind plus the variant drawn for it (HTTP status)."""

    kind: str
    status: int


def sheds(config: FaultConfig, provider: str, n: int) -> bool:
    """Whether the ``n``-th request to ``provider`` is shed (429) under ``config``. Pure."""
    share = config.shed_load.get(provider, 0.0)
    return share > 0 and random.Random(f"shed:{config.seed}:{provider}:{n}").random() < share


def decide(config: FaultConfig, n: int, provider: str) -> Fault | None:
    """The fault for the ``n``-th request to ``provider`` under ``config`` (None: answer normally). Pure.

    Counted per provider, so concurrent requests to different providers cannot change which request of a
    provider gets which fault: a test (or a bug report) replays the same sequence.
    """
    if config.rate <= 0 or not config.kinds:
        return None
    rng = random.Random(f"{config.seed}:{provider}:{n}")
    if rng.random() >= config.rate:
        return None
    kind = config.kinds[rng.randrange(len(config.kinds))]
    if kind == "429":
        status = 429
    elif kind == "5xx":
        status = SERVER_ERROR_STATUSES[rng.randrange(len(SERVER_ERROR_STATUSES))]
    elif kind == "html":
        status = (502, 200)[rng.randrange(2)]
    else:
        status = 200
    return Fault(kind, status)


# A bar as the server handles it before formatting: [open_s, open, high, low, close, volume].
Bar = list[Any]


def corrupt_bars(bars: list[Bar], corruptions: list[str]) -> list[Bar]:
    """Apply price-body corruptions to ascending bars (the caller orders them afterwards).

    - gap: drop the 13:00 UTC bar of every day
    - duplicates: send each 07:00 UTC bar twice (the first bar when there is none)
    - high_lt_low: swap high and low of one bar (the middle one, or the next with high != low)
    - nan_close / negative_price: the middle bar's close is NaN / its low is negative
    - conflicting_duplicate: the 07:00 UTC bar is sent twice, the second with a close 5% higher
    ``junk_strings`` (``junk``) and ``out_of_order`` (``shuffle_rows``) act on the formatted rows.
    """
    bars = [list(bar) for bar in bars]
    if "gap" in corruptions:
        bars = [bar for bar in bars if (bar[0] // 3600) % 24 != GAP_HOUR]
    if "duplicates" in corruptions and bars:
        doubled: list[Bar] = []
        hit = False
        for bar in bars:
            doubled.append(bar)
            if (bar[0] // 3600) % 24 == DUPLICATE_HOUR:
                doubled.append(list(bar))
                hit = True
        if not hit:
            doubled.insert(0, list(bars[0]))
        bars = doubled
    if "high_lt_low" in corruptions and bars:
        middle = len(bars) // 2
        order = list(range(middle, len(bars))) + list(range(middle))
        index = next((i for i in order if bars[i][2] != bars[i][3]), middle)
        bars[index][2], bars[index][3] = bars[index][3], bars[index][2]
    if "nan_close" in corruptions and bars:
        bars[len(bars) // 2][4] = float("nan")
    if "negative_price" in corruptions and bars:
        bars[len(bars) // 2][3] = -abs(bars[len(bars) // 2][3])
    if "conflicting_duplicate" in corruptions and bars:
        index = next((i for i, bar in enumerate(bars) if (bar[0] // 3600) % 24 == DUPLICATE_HOUR), 0)
        other = list(bars[index])
        other[4] = other[4] * 1.05
        other[2] = max(other[2], other[4])  # still a consistent bar on its own: only the repeat contradicts
        bars.insert(index + 1, other)
    return bars


def junk(value: Any) -> str:
    """A price field with junk appended, e.g. 37902.06 or "37902.06000000" -> "37902.06abc"."""
    return f"{value if isinstance(value, str) else repr(float(value))}abc"


def shuffle_rows(rows: list[Any], seed: int) -> list[Any]:
    """Deterministically shuffle rows so that they are never left in their original order (when len > 1)."""
    shuffled = list(rows)
    if len(shuffled) < 2:
        return shuffled
    random.Random(f"shuffle:{seed}:{len(rows)}").shuffle(shuffled)
    if shuffled == list(rows):
        shuffled.reverse()
    return shuffled
