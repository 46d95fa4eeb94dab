"""Technical indicators per symbol (features.md, features 1-5 and VWAP24), computed with `ta` 0.11.

Pure: a prices frame in, an indicators frame out. No Dagster, no I/O.

Every indicator is computed on each symbol's own series ordered by `ts`; windows count bars
(a missing bar is not invented, the window simply reaches one bar further back). Warm-up values
are null, never 0: `ta` is always called with ``fillna=False``, and ATR's zero warm-up is nulled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator
from ta.volatility import BollingerBands

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDICATOR_COLUMNS: tuple[str, ...] = (
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_high",
    "bb_mid",
    "bb_low",
    "bb_pct_b",
    "atr_14",
    "ema_12",
    "ema_26",
    "vwap_24",
)

RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGN = 12, 26, 9
BB_WINDOW, BB_DEV = 20, 2
ATR_WINDOW = 14
VWAP_WINDOW = 24

LOOKBACK_BARS = 336
"""Bars of history to load before a partition's first bar: 14 days of hourly bars.

A day partition's values must equal the whole-history values within 1e-6 relative (features.md).
The windowed values (24 bars) need only 24 bars of look-back, but RSI, MACD, the EMAs and ATR are
recursive: `ta` seeds them at the first bar it is given, and the seed's error decays geometrically,
by ``1 - alpha`` per bar (13/14 for RSI and ATR, 25/27 for EMA26, 8/10 for the MACD signal). After 168
bars (7 days) 3.9e-6 (RSI) and 2.5e-6 (EMA26) of the initial error remain; after 336 bars, 1.5e-11 and
6e-12. What matters is the error relative to the *value*, and MACD (a difference of two EMAs) and
``ema_12/ema_26 - 1`` are small numbers that pass through zero.

Measured on the real Binance BTC/ETH bars of May-Aug 2022, 90 day partitions against one whole-history
run (``test_lookback_of_7_days_fails_1e6_and_14_days_passes_on_real_data``): with 7 days the worst
relative errors are RSI 1.0e-5, ATR 4.0e-6, MACD histogram 4.2e-3, MACD line and EMA ratio 1.7e-2
(each EMA alone stays within 3e-7); 10 days still fails for MACD (8e-5); with 14 days the worst are
RSI 5e-11, MACD 4e-8, EMA ratio 4e-8, and Bollinger %B 8e-8 (rolling-std float noise, not seeding).
"""

_TS_DTYPE = "datetime64[ns, UTC]"


# --- helpers shared with features.py / training.py (same package, not part of the public API) ---


def sorted_bars(
    frame: pd.DataFrame, columns: Mapping[str, np.ndarray] | None = None, *, what: str = "prices"
) -> pd.DataFrame:
    """symbol (str), ts (ns UTC) and ``columns`` (arrays in ``frame``'s row order) of ``frame``, sorted by
    (symbol, ts), default index; ValueError naming ``what`` on a duplicate (symbol, ts)."""
    out = pd.DataFrame(
        {
            "symbol": frame["symbol"].astype(str).to_numpy(),
            "ts": normalize_ts(frame["ts"]).array,  # .to_numpy() would box 1M Timestamps
            **(columns or {}),
        }
    )
    out = out.sort_values(["symbol", "ts"], kind="mergesort", ignore_index=True)
    dup = out.duplicated(["symbol", "ts"])
    if dup.any():
        first = out.loc[dup, ["symbol", "ts"]].iloc[0]
        raise ValueError(f"{what} frame has duplicate (symbol, ts) rows, e.g. {first['symbol']} {first['ts']}")
    return out


def prepare_prices(prices: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """symbol, ts (ns UTC), open..volume (float64) and the ``extra`` columns as given, sorted by (symbol, ts),
    unique, default index."""
    missing = {"symbol", "ts", *PRICE_COLUMNS, *extra} - set(prices.columns)
    if missing:
        raise ValueError(f"prices frame lacks columns {sorted(missing)}")
    columns = {c: prices[c].to_numpy(dtype="float64") for c in PRICE_COLUMNS}
    columns.update({c: prices[c].to_numpy() for c in extra})
    return sorted_bars(prices, columns)


def normalize_ts(ts: pd.Series) -> pd.Series:
    """Timestamps as datetime64[ns, UTC] (naive values are taken as UTC)."""
    # to_datetime would scan every value of an already tz-aware series to decide on caching
    out = ts.dt.tz_convert("UTC") if isinstance(ts.dtype, pd.DatetimeTZDtype) else pd.to_datetime(ts, utc=True)
    return out.astype(_TS_DTYPE) if str(out.dtype) != _TS_DTYPE else out


def series_bounds(symbols: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each symbol's contiguous run in a frame sorted by symbol."""
    if len(symbols) == 0:
        return []
    change = np.flatnonzero(symbols[1:] != symbols[:-1]) + 1
    starts = np.concatenate(([0], change))
    stops = np.concatenate((change, [len(symbols)]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def position_in_series(symbols: np.ndarray) -> np.ndarray:
    """0-based bar number of each row within its symbol's series (frame sorted by symbol)."""
    pos = np.arange(len(symbols))
    for start, stop in series_bounds(symbols):
        pos[start:stop] -= start
    return pos


def rolling_reduce(
    func: Callable[..., np.ndarray],
    arrays: Sequence[np.ndarray],
    window: int,
    position: np.ndarray,
    chunk_rows: int = 1 << 17,
) -> np.ndarray:
    """Apply ``func`` to the trailing ``window`` values ending at each row, per symbol.

    ``func`` receives one 2-D view (rows x window) per input array and returns one value per row.
    Each window is reduced from its own values only, so a value does not depend on how much history
    came before it (partition results equal whole-history results bit for bit). Rows whose window
    would reach into the previous symbol (``position < window - 1``) are null; any null inside a
    window makes the result null. Works in chunks of rows to bound memory.
    """
    n = len(position)
    out = np.full(n, np.nan)
    if n < window:
        return out
    views = [sliding_window_view(np.asarray(a, dtype="float64"), window) for a in arrays]
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, len(views[0]), chunk_rows):
            stop = min(start + chunk_rows, len(views[0]))
            out[start + window - 1 : stop + window - 1] = func(*(v[start:stop] for v in views))
    out[position < window - 1] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def vwap(prices: pd.DataFrame, position: np.ndarray, window: int = VWAP_WINDOW) -> np.ndarray:
    """``sum(tp*volume)/sum(volume)`` over the last ``window`` bars, ``tp = (high+low+close)/3``.

    ``prices`` must come from :func:`prepare_prices`. Null until the window is full, and where the
    window's volume is 0 (no trades: no volume-weighted price exists).
    """
    tp = (prices["high"].to_numpy() + prices["low"].to_numpy() + prices["close"].to_numpy()) / 3.0
    vol = prices["volume"].to_numpy()
    return rolling_reduce(lambda tpv, v: tpv.sum(axis=1) / v.sum(axis=1), [tp * vol, vol], window, position)


def _atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int = ATR_WINDOW) -> np.ndarray:
    """``ta.volatility.AverageTrueRange(...).average_true_range()`` for one series, vectorised.

    Same definition as ta 0.11: true range ``max(h-l, |h-c_prev|, |l-c_prev|)`` (``h-l`` on the first
    bar), seed = mean of the first ``window`` true ranges at bar ``window-1``, then Wilder smoothing
    ``atr_i = (atr_{i-1}*(window-1) + tr_i)/window``. ta runs that recursion as a Python loop over rows
    with ``Series.iloc`` (about 8 s per million bars, and an IndexError on series shorter than the
    window); here it is pandas' ``ewm(alpha=1/window, adjust=False)`` from the seed. The test suite
    checks it equals ta to 1e-12 relative on the real data. Warm-up values are NaN (ta writes 0).
    """
    n = len(close)
    out = np.full(n, np.nan)
    if n < window:
        return out
    prev_close = np.concatenate(([np.nan], close[:-1]))
    tr = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    seeded = tr.copy()
    seeded[: window - 1] = np.nan
    seeded[window - 1] = tr[:window].mean()
    out[window - 1 :] = pd.Series(seeded[window - 1 :]).ewm(alpha=1.0 / window, adjust=False).mean().to_numpy()
    return out


def technical_indicators(prices: pd.DataFrame) -> pd.DataFrame:
    """Indicators per symbol: symbol, ts + :data:`INDICATOR_COLUMNS`, sorted by (symbol, ts).

    - ``rsi_14``: ``ta.momentum.RSIIndicator(close, 14)``
    - ``macd``, ``macd_signal``, ``macd_hist``: ``ta.trend.MACD(close, 26, 12, 9)`` line, signal, diff
    - ``bb_high``, ``bb_mid``, ``bb_low``, ``bb_pct_b``: ``ta.volatility.BollingerBands(close, 20, 2)``
    - ``atr_14``: ``ta.volatility.AverageTrueRange(high, low, close, 14)`` (vectorised equivalent, see
      :func:`_atr`), null for the first 14 bars of a series (features.md)
    - ``ema_12``, ``ema_26``: ``ta.trend.EMAIndicator(close, 12 / 26)``
    - ``vwap_24``: see :func:`vwap`

    All `ta` calls use ``fillna=False``: warm-up values are null. Recursive indicators depend on the
    first bar given; load :data:`LOOKBACK_BARS` of history before the rows you keep.
    """
    p = prepare_prices(prices)
    n = len(p)
    cols = {c: np.full(n, np.nan) for c in INDICATOR_COLUMNS}
    close_all = p["close"].to_numpy()
    high_all, low_all = p["high"].to_numpy(), p["low"].to_numpy()
    for start, stop in series_bounds(p["symbol"].to_numpy()):
        close = pd.Series(close_all[start:stop])
        sl = slice(start, stop)
        cols["rsi_14"][sl] = RSIIndicator(close, window=RSI_WINDOW, fillna=False).rsi().to_numpy()
        macd = MACD(close, window_slow=MACD_SLOW, window_fast=MACD_FAST, window_sign=MACD_SIGN, fillna=False)
        cols["macd"][sl] = macd.macd().to_numpy()
        cols["macd_signal"][sl] = macd.macd_signal().to_numpy()
        cols["macd_hist"][sl] = macd.macd_diff().to_numpy()
        bb = BollingerBands(close, window=BB_WINDOW, window_dev=BB_DEV, fillna=False)
        cols["bb_high"][sl] = bb.bollinger_hband().to_numpy()
        cols["bb_mid"][sl] = bb.bollinger_mavg().to_numpy()
        cols["bb_low"][sl] = bb.bollinger_lband().to_numpy()
        cols["bb_pct_b"][sl] = bb.bollinger_pband().to_numpy()
        cols["ema_12"][sl] = EMAIndicator(close, window=MACD_FAST, fillna=False).ema_indicator().to_numpy()
        cols["ema_26"][sl] = EMAIndicator(close, window=MACD_SLOW, fillna=False).ema_indicator().to_numpy()
        atr = _atr(high_all[sl], low_all[sl], close_all[sl])
        atr[:ATR_WINDOW] = np.nan  # features.md: null for the first 14 bars of a series
        cols["atr_14"][sl] = atr
    position = position_in_series(p["symbol"].to_numpy())
    cols["vwap_24"] = vwap(p, position)
    out = p[["symbol", "ts"]].copy()
    for c in INDICATOR_COLUMNS:
        values = cols[c]
        values[~np.isfinite(values)] = np.nan
        out[c] = values
    return out
