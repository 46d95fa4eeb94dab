"""Hourly price clients' shared parts and the (symbol, day) failover across providers.

Every client returns the prices frame: symbol, ts (bar open, UTC), open, high, low, close, volume
(base asset), provider; bars with ``start <= ts < end`` that are finished (``ts + 1h <= now``), sorted by
ts, exactly as the provider sent them (duplicates included). Parsing is strict about shape: a row of the
wrong shape or a value that is not a number at all is a ProviderError naming the row. Values that parse
but cannot be prices (NaN, infinity, <= 0, high below low, two different bars for one hour) are judged
per day by the failover (``day_problem``), which rejects that provider's day and asks the next provider.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import OPEN, HttpClient, HttpStatusError, merge_stats
from crypto_assets.providers.registry import BaseClient
from crypto_assets.symbols import validate_symbol
from crypto_assets.timegrid import consecutive_runs as _runs

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


def iso_z(seconds: int) -> str:
    """``2022-05-04T00:00:00Z``"""
    return dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_seconds(value: Any) -> int | None:
    """An epoch-seconds integer from an int, an integral float or a digit string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) else None


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
    """A float from a JSON number or numeric string (NaN and infinity included: the failover judges those per
    day); anything that is not a number names the offending row."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise bad_body(provider, f"{field_name} {value!r} is not a number in row at index {index}: {excerpt(row)}")
    return number


def parse_time(provider: str, value: Any, *, index: int, row: Any, divisor: int = 1, digits: bool = False) -> int:
    """Epoch seconds (``divisor=1000`` for milliseconds) that must be an integer on the hour; with ``digits``, a
    string of digits is one too."""
    whole = whole_seconds(value) if digits or not isinstance(value, str) else None
    if whole is None:
        raise bad_body(provider, f"time {value!r} is not an integer in row at index {index}: {excerpt(row)}")
    if whole % divisor:
        raise bad_body(provider, f"time {whole!r} is not on a whole second in row at index {index}: {excerpt(row)}")
    seconds = whole // divisor
    if seconds % HOUR:
        raise bad_body(provider, f"bar time {seconds} is not on the hour in row at index {index}: {excerpt(row)}")
    return seconds


def expect_list(provider: str, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad_body(provider, f"expected a JSON list of {what}, got {type(value).__name__}: {excerpt(value)}")
    return value


def expect_object(provider: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_body(provider, f"expected a JSON object, got {type(value).__name__}: {excerpt(value)}")
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
    """The prices frame from parsed bars: finished bars in [start, end), sorted by time, duplicates kept (the
    failover tells identical repeats from contradictions)."""
    rows = [bar for bar in bars if start_s <= bar[0] < end_s and bar[0] + HOUR <= now_s]
    if not rows:
        return empty_prices_frame()
    frame = pd.DataFrame(rows, columns=["t", "open", "high", "low", "close", "volume"])
    frame = frame.sort_values("t", kind="stable")
    out = pd.DataFrame(
        {
            "symbol": symbol,
            "ts": pd.to_datetime(frame["t"].to_numpy(), unit="s", utc=True).astype("datetime64[ns, UTC]"),
            **{col: frame[col].astype("float64").to_numpy() for col in ("open", "high", "low", "close", "volume")},
            "provider": provider,
        }
    )
    return out.reset_index(drop=True)


class BasePriceClient(BaseClient):
    """Common frame handling; subclasses implement ``_fetch_bars`` for [start_s, stop_s) in epoch seconds."""

    symbols: ClassVar[SymbolMap]

    def pair(self, symbol: str) -> str:
        """The provider's name for a universe symbol, e.g. BTC -> BTCUSDT."""
        return self.symbols.to_provider(symbol)

    def probe(self, now: dt.datetime) -> str:
        """One small request for BTC's latest closed bars (raises ProviderError when it fails)."""
        end = dt.datetime.fromtimestamp(floor_hour(epoch_seconds(now)), UTC)
        frame = self.fetch_hourly("BTC", end - dt.timedelta(hours=2), end, now=now)
        return f"{len(frame)} of the last 2 hourly BTC bars"

    def _get_parsed(self, path: str, params: dict[str, Any], parse: Callable[[Any], Any], *, pair: str = "") -> Any:
        """As BaseClient's, with an HTTP 4xx answer for ``pair`` mapped by ``_status_error``."""
        try:
            return super()._get_parsed(path, params, parse)
        except HttpStatusError as exc:
            mapped = self._status_error(exc, pair)
            if mapped is None:
                raise
            raise mapped from None

    def _status_error(self, exc: HttpStatusError, pair: str) -> ProviderError | None:
        """The error an HTTP 4xx answer stands for (an unknown pair, a provider's error body); None keeps ``exc``."""
        return None

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


# --------------------------------------------------------------------------------------------- failover

COMPLETE, PARTIAL, NO_DATA, FAILED = "complete", "partial", "no_data", "failed"
ANSWER_REJECTED = "answer rejected"
_VALUES = ("open", "high", "low", "close", "volume")


def expected_bars(day: dt.date, now: dt.datetime) -> int:
    """Hourly bars a day can have at ``now``: 24 for a finished day, the closed hours for the day in progress."""
    start = _day_start(day)
    closed = (to_utc(now) - start) // dt.timedelta(hours=1)
    return max(0, min(24, closed))


def _at(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d %H:%M} UTC"


def day_problem(bars: pd.DataFrame) -> str | None:
    """Why one provider's answer for one (symbol, day) cannot be taken, or None when it can.

    Two different bars for one hour, a price that is not finite or not positive, a negative volume, or a bar
    whose high/low do not hold its open and close. Identical repeats are fine (``distinct_bars`` drops them).
    """
    repeated = bars[bars["ts"].duplicated(keep=False)]
    if not repeated.empty:
        distinct = repeated.drop_duplicates(["ts", *_VALUES])
        clash = distinct[distinct["ts"].duplicated(keep=False)]
        if not clash.empty:
            first = clash[clash["ts"] == clash["ts"].iloc[0]]
            closes = " and ".join(f"{value:,.8g}" for value in first["close"])
            return f"two different bars for {_at(first['ts'].iloc[0])} (close {closes})"
    o, h, lo, c, v = (bars[name].to_numpy(dtype="float64") for name in _VALUES)
    with np.errstate(invalid="ignore"):
        checks = [
            *(
                (~(values > 0) | ~np.isfinite(values), name)
                for name, values in (("open", o), ("high", h), ("low", lo), ("close", c))
            ),
            (~(v >= 0) | ~np.isfinite(v), "volume"),
            (h < lo, "high below low"),
            ((o < lo) | (o > h) | (c < lo) | (c > h), "open/close outside low..high"),
        ]
    for bad, what in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            when = _at(bars["ts"].iloc[row])
            if what == "high below low":
                return f"high {h[row]:,.8g} below low {lo[row]:,.8g} at {when}"
            if what == "open/close outside low..high":
                span = f"low {lo[row]:,.8g} .. high {h[row]:,.8g}"
                return f"open {o[row]:,.8g} / close {c[row]:,.8g} outside {span} at {when}"
            return f"{what} {float(bars[what].iloc[row])!r} at {when}"
    return None


def distinct_bars(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.drop_duplicates("ts", keep="first").reset_index(drop=True)


@dataclass(frozen=True)
class DayOutcome:
    """What became of one (symbol, day): the row of ``raw.price_coverage``."""

    day: dt.date
    status: str  # complete | partial | no_data | failed
    bars: int
    provider: str | None
    detail: str  # each asked provider's answer, in a few words


@dataclass
class FailoverResult:
    frame: pd.DataFrame  # the bars of every served (complete or partial) day, each day from one provider
    days: dict[dt.date, DayOutcome] = field(default_factory=dict)
    # Totals of this call's HTTP counters, plus "by_provider": {name: counters}.
    stats: dict[str, Any] = field(default_factory=dict)

    def with_status(self, *statuses: str) -> list[dt.date]:
        return sorted(day for day, outcome in self.days.items() if outcome.status in statuses)

    @property
    def failed_days(self) -> dict[dt.date, str]:
        return {day: self.days[day].detail for day in self.with_status(FAILED)}


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=UTC)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Answer:
    """One provider's answer for one day: its bars, or why there are none."""

    bars: pd.DataFrame | None = None
    note: str = ""
    error: bool = False


def _ask(client: PriceClient, symbol: str, days: list[dt.date], now: dt.datetime) -> dict[dt.date, _Answer]:
    """``client``'s answer for each of ``days``: asked once per run of consecutive days, a failed multi-day
    request bisected (while the provider's circuit is closed) so that one bad day costs only that day."""
    answers: dict[dt.date, _Answer] = {}
    pending = _runs(days)
    while pending:
        run = pending.pop(0)
        start, end = _day_start(run[0]), _day_start(run[-1] + dt.timedelta(days=1))
        try:
            frame = client.fetch_hourly(symbol, start, end, now=now)
        except UnknownSymbolError as exc:
            # A definite answer: the provider does not list the symbol, for any day.
            for day in [d for r in [run, *pending] for d in r]:
                answers[day] = _Answer(note=f"not listed ({_short(exc.cause, 80)})")
            return answers
        except ProviderError as exc:
            if len(run) > 1 and client.http.breaker.state != OPEN:
                middle = len(run) // 2
                pending[:0] = [run[:middle], run[middle:]]
                continue
            for day in run:
                answers[day] = _Answer(note=_short(exc.cause), error=True)
            continue
        by_day = frame["ts"].dt.floor("D")
        for day in run:
            bars = frame[by_day == pd.Timestamp(day, tz=UTC)].reset_index(drop=True)
            if bars.empty:
                answers[day] = _Answer(note="no bars")
                continue
            problem = day_problem(bars)
            if problem is not None:
                answers[day] = _Answer(note=f"{ANSWER_REJECTED}: {problem}", error=True)
                continue
            answers[day] = _Answer(bars=distinct_bars(bars))
    return answers


def fetch_prices_with_failover(
    symbol: str,
    days: Iterable[dt.date],
    clients: Sequence[PriceClient],
    *,
    now: dt.datetime | None = None,
) -> FailoverResult:
    """Serve each (symbol, day) from the provider with the most complete answer (earlier in the order on ties).

    A provider is asked only for the days no earlier provider answered completely: normally the first
    provider serves every day and nobody else is asked. A day is never stitched from two providers. A day
    still in progress is complete when it holds every hour closed at ``now``. Outcomes per day: ``complete``,
    ``partial`` (fewer bars; the best answer is kept), ``no_data`` (every provider answered, none had bars:
    not listed yet, delisted, unknown) or ``failed`` (a provider erred and none served).
    """
    now = to_utc(now) if now is not None else dt.datetime.now(UTC)
    wanted = sorted({day.date() if isinstance(day, dt.datetime) else day for day in days})
    wanted = [day for day in wanted if expected_bars(day, now) > 0]
    notes: dict[dt.date, dict[str, _Answer]] = {day: {} for day in wanted}
    best: dict[dt.date, tuple[str, pd.DataFrame]] = {}
    before = {id(client): client.http.stats() for client in clients}

    for client in clients:
        todo = [day for day in wanted if day not in best or len(best[day][1]) < expected_bars(day, now)]
        if not todo:
            break
        for day, answer in _ask(client, symbol, todo, now).items():
            notes[day][client.name] = answer
            if answer.bars is not None and (day not in best or len(answer.bars) > len(best[day][1])):
                best[day] = (client.name, answer.bars)

    outcomes: dict[dt.date, DayOutcome] = {}
    for day in wanted:
        expected = expected_bars(day, now)
        said = notes[day]
        words = [
            f"{name}: {len(a.bars)} bars" if a.bars is not None else f"{name}: {a.note}" for name, a in said.items()
        ]
        detail = "; ".join(words)
        if day in best:
            provider, bars = best[day]
            status = COMPLETE if len(bars) >= expected else PARTIAL
            outcomes[day] = DayOutcome(day, status, len(bars), provider, detail)
        else:
            status = FAILED if any(answer.error for answer in said.values()) else NO_DATA
            outcomes[day] = DayOutcome(day, status, 0, None, detail)

    by_provider: dict[str, dict[str, float]] = {}
    for client in clients:
        after = client.http.stats()
        delta = {key: after[key] - before[id(client)].get(key, 0) for key in after}
        previous = by_provider.get(client.name)
        by_provider[client.name] = dict(merge_stats([previous, delta])) if previous else delta
    stats: dict[str, Any] = dict(merge_stats(by_provider.values()))
    stats["by_provider"] = by_provider

    pieces = [bars for _, bars in best.values()]
    frame = (
        pd.concat(pieces, ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)
        if pieces
        else empty_prices_frame()
    )
    return FailoverResult(frame=frame, days=outcomes, stats=stats)
