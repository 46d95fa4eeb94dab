"""Hourly price clients' shared parts, the client factory, and day-by-day provider failover.

Every client returns the prices frame: symbol, ts (bar open, UTC), open, high, low, close, volume
(base asset), provider; bars with ``start <= ts < end`` that are finished (``ts + 1h <= now``), sorted,
one row per ts (the last one received wins). Parsing is strict: a value that is not a finite number,
or a row of the wrong shape, is a ProviderError naming the row; nothing becomes a silent NaN.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import HttpClient, circuit_state, merge_stats
from crypto_assets.symbols import validate_symbol

if TYPE_CHECKING:
    from crypto_assets.providers.registry import SymbolMap

PRICE_COLUMNS: tuple[str, ...] = ("symbol", "ts", "open", "high", "low", "close", "volume", "provider")
HOUR = 3600
UTC = dt.UTC

# (open time in epoch seconds, open, high, low, close, volume)
Bar = tuple[int, float, float, float, float, float]


class PriceClient(Protocol):
    name: str
    http: HttpClient

    def fetch_hourly(
        self, symbol: str, start: dt.datetime, end: dt.datetime, *, now: dt.datetime | None = None
    ) -> pd.DataFrame: ...


# --------------------------------------------------------------------------------------------- helpers


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware datetimes converted to UTC; naive ones are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def epoch_seconds(value: dt.datetime) -> int:
    return math.floor(to_utc(value).timestamp())


def floor_hour(seconds: int) -> int:
    return seconds - seconds % HOUR


def ceil_hour(seconds: int) -> int:
    return -(-seconds // HOUR) * HOUR


def excerpt(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def bad_body(provider: str, cause: str, *, retryable: bool = False) -> ProviderError:
    """An error raised inside a ``validate`` callback (HttpClient fills in the redacted URL)."""
    return ProviderError(provider, "", cause, retryable=retryable)


def parse_number(provider: str, value: Any, *, field_name: str, index: int, row: Any) -> float:
    """A finite float from a JSON number or numeric string; anything else names the offending row."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise bad_body(provider, f"{field_name} {value!r} is not a number in row at index {index}: {excerpt(row)}")
    return number


def parse_time(provider: str, value: Any, *, index: int, row: Any, divisor: int = 1) -> int:
    """Epoch seconds (``divisor=1000`` for milliseconds) that must be an integer on the hour."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_body(provider, f"time {value!r} is not an integer in row at index {index}: {excerpt(row)}")
    if value % divisor:
        raise bad_body(provider, f"time {value!r} is not on a whole second in row at index {index}: {excerpt(row)}")
    seconds = value // divisor
    if seconds % HOUR:
        raise bad_body(provider, f"bar time {seconds} is not on the hour in row at index {index}: {excerpt(row)}")
    return seconds


def expect_list(provider: str, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_body(provider, f"expected a JSON list of {what}, got {type(value).__name__}: {excerpt(value)}")
    return value


def empty_prices_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.Series(dtype="object"),
            "ts": pd.Series(dtype="datetime64[ns, UTC]"),
            **{col: pd.Series(dtype="float64") for col in ("open", "high", "low", "close", "volume")},
            "provider": pd.Series(dtype="object"),
        }
    )


def bars_frame(symbol: str, provider: str, bars: Iterable[Bar], start_s: int, end_s: int, now_s: int) -> pd.DataFrame:
    """The prices frame from parsed bars, keeping finished bars in [start, end), de-duplicated and sorted."""
    rows = [bar for bar in bars if start_s <= bar[0] < end_s and bar[0] + HOUR <= now_s]
    if not rows:
        return empty_prices_frame()
    frame = pd.DataFrame(rows, columns=["t", "open", "high", "low", "close", "volume"])
    frame = frame.drop_duplicates("t", keep="last").sort_values("t", kind="stable")
    out = pd.DataFrame(
        {
            "symbol": symbol,
            "ts": pd.to_datetime(frame["t"].to_numpy(), unit="s", utc=True).astype("datetime64[ns, UTC]"),
            **{col: frame[col].astype("float64").to_numpy() for col in ("open", "high", "low", "close", "volume")},
            "provider": provider,
        }
    )
    return out.reset_index(drop=True)


class BasePriceClient:
    """Common frame handling; subclasses implement ``_fetch_bars`` for [start_s, stop_s) in epoch seconds."""

    name: ClassVar[str]
    symbols: ClassVar[SymbolMap]
    rate_per_second: ClassVar[float] = 5.0
    burst: ClassVar[float] = 1.0

    def __init__(
        self,
        base_url: str,
        *,
        http: HttpClient | None = None,
        api_key: str | None = None,
        rate_limited: bool = True,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.rate_limited = rate_limited
        self.options = dict(options or {})
        self.http = http or HttpClient(self.name, self.base_url, **self._http_options())

    def pair(self, symbol: str) -> str:
        """The provider's name for a universe symbol, e.g. BTC -> BTCUSDT."""
        return self.symbols.to_provider(symbol)

    def probe(self, now: dt.datetime) -> str:
        """One small request for BTC's latest closed bars (raises ProviderError when it fails)."""
        end = dt.datetime.fromtimestamp(floor_hour(epoch_seconds(now)), UTC)
        frame = self.fetch_hourly("BTC", end - dt.timedelta(hours=2), end, now=now)
        return f"{len(frame)} of the last 2 hourly BTC bars"

    def _http_options(self) -> dict[str, Any]:
        if not self.rate_limited:
            return {"rate_per_second": None}
        return {"rate_per_second": self.rate_per_second, "burst": self.burst}

    def _auth_headers(self) -> dict[str, str]:
        """Credential headers, sent with every request (also through an injected HttpClient)."""
        return {}

    def _get_parsed(self, path: str, params: dict[str, Any], parse: Callable[[Any], Any]) -> Any:
        """GET JSON and return ``parse(body)``; parse errors carry the request's redacted URL."""
        headers = self._auth_headers() or None
        return collect(lambda validate: self.http.get_json(path, params, validate=validate, headers=headers), parse)

    def fetch_hourly(
        self, symbol: str, start: dt.datetime, end: dt.datetime, *, now: dt.datetime | None = None
    ) -> pd.DataFrame:
        validate_symbol(symbol)
        start_s = ceil_hour(epoch_seconds(start))
        end_s = epoch_seconds(end)
        now_s = epoch_seconds(now) if now is not None else math.floor(dt.datetime.now(UTC).timestamp())
        stop_s = min(ceil_hour(end_s), floor_hour(now_s))  # exclusive; the bar at floor(now) is unfinished
        if start_s >= stop_s:
            return empty_prices_frame()
        bars = self._fetch_bars(symbol, start_s, stop_s)
        return bars_frame(symbol, self.name, bars, start_s, min(end_s, stop_s), now_s)

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


def collect(getter: Callable[[Callable[[Any], None]], Any], parse: Callable[[Any], Any]) -> Any:
    """Run ``getter(validate)`` where validate parses the body, and return the parsed value.

    Parsing inside ``validate`` lets HttpClient attach the (redacted) URL to any row error.
    """
    box: list[Any] = []

    def validate(body: Any) -> None:
        box.append(parse(body))

    getter(validate)
    return box[-1]


# --------------------------------------------------------------------------------------------- failover


@dataclass
class FailoverResult:
    frame: pd.DataFrame
    failed_days: dict[dt.date, dict[str, str]] = field(default_factory=dict)
    provider_days: dict[str, int] = field(default_factory=dict)
    # Totals of this call's HTTP counters, plus "by_provider": {name: counters}.
    stats: dict[str, Any] = field(default_factory=dict)


def _runs(days: Sequence[dt.date]) -> list[list[dt.date]]:
    """Consecutive-day runs of sorted ``days``."""
    runs: list[list[dt.date]] = []
    for day in days:
        if runs and day - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=UTC)


def fetch_prices_with_failover(
    symbol: str,
    days: Iterable[dt.date],
    clients: Sequence[PriceClient],
    *,
    now: dt.datetime | None = None,
) -> FailoverResult:
    """Serve each UTC day from the first provider that returns at least one bar for it without error.

    Each provider is asked once per run of consecutive remaining days (the whole range at once), and
    the answer is split by day. A failed multi-day request is bisected (while the provider's circuit
    is closed) so that one bad day costs only that day. An unknown symbol moves every remaining day to
    the next provider at once.
    """
    wanted = sorted({day.date() if isinstance(day, dt.datetime) else day for day in days})
    errors: dict[dt.date, dict[str, str]] = {day: {} for day in wanted}
    provider_days: dict[str, int] = {client.name: 0 for client in clients}
    before = {id(client): client.http.stats() for client in clients}
    pieces: list[pd.DataFrame] = []
    remaining = list(wanted)

    for client in clients:
        if not remaining:
            break
        served: set[dt.date] = set()
        unknown: ProviderError | None = None
        pending = list(_runs(remaining))
        while pending:
            run = pending.pop(0)
            if unknown is not None:
                for day in run:
                    errors[day][client.name] = str(unknown)
                continue
            start, end = _day_start(run[0]), _day_start(run[-1] + dt.timedelta(days=1))
            try:
                frame = client.fetch_hourly(symbol, start, end, now=now)
            except UnknownSymbolError as exc:
                unknown = exc
                for day in run:
                    errors[day][client.name] = str(exc)
                continue
            except ProviderError as exc:
                if len(run) > 1 and circuit_state(client.name) != "open":
                    # One bad day must not cost the provider the whole run: bisect to find the days it can serve.
                    middle = len(run) // 2
                    pending[:0] = [run[:middle], run[middle:]]
                    continue
                for day in run:
                    errors[day][client.name] = str(exc)
                continue
            bar_days = frame["ts"].dt.floor("D")
            present = {ts.date() for ts in bar_days.unique()}
            asked = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"
            for day in run:
                if day not in present:
                    errors[day][client.name] = f"{client.name}: no bars for {day.isoformat()} in its answer for {asked}"
            answered = [day for day in run if day in present]
            if answered:
                served.update(answered)
                pieces.append(frame[bar_days.isin([pd.Timestamp(day, tz=UTC) for day in answered])])
        provider_days[client.name] = provider_days.get(client.name, 0) + len(served)
        remaining = [day for day in remaining if day not in served]

    by_provider: dict[str, dict[str, float]] = {}
    for client in clients:
        after = client.http.stats()
        delta = {key: after[key] - before[id(client)].get(key, 0) for key in after}
        previous = by_provider.get(client.name)
        by_provider[client.name] = dict(merge_stats([previous, delta])) if previous else delta
    stats: dict[str, Any] = dict(merge_stats(by_provider.values()))
    stats["by_provider"] = by_provider

    if pieces:
        frame = pd.concat(pieces, ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)
    else:
        frame = empty_prices_frame()
    return FailoverResult(
        frame=frame,
        failed_days={day: errors[day] for day in remaining},
        provider_days=provider_days,
        stats=stats,
    )
