"""The 16-feature vector of features.md: one pure, vectorised function per feature group.

Pandas in, pandas out; no Dagster, no I/O. Every function works on each symbol's own series ordered by
`ts`. Lags and windows count **hours on the UTC grid, not rows** (features.md "Bars"): the previous bar is
the bar at ``ts - 1h`` and "the last 24 bars" are the bars at ``ts - 23h .. ts``. A missing bar is never
invented; a lag or window that lacks one is incomplete and its value is null ("Gaps, venues and news
coverage"), as is a value whose window is not full yet (the start of a series). Never 0.

The bars are kept as rows (only bars that exist get a row); the grid enters through integer hour keys:
``_Grid`` finds the bar at ``ts - k h`` by binary search and counts the bars of each 24-hour window, and a
row-based window over 24 rows is the 24-hour window exactly when none of those hours is missing.

Point in time: a value for bar `ts` uses only bars with open time <= `ts` (and, through
`sentiment_hourly`, articles published before `ts + 1h`). Rolling windows are reduced from their own
values only (:func:`~crypto_assets.transforms.indicators.rolling_reduce`), so a partition computed
with look-back equals the whole-history value; the recursive indicators need
:data:`~crypto_assets.transforms.indicators.LOOKBACK_BARS` of look-back for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crypto_assets.symbols import BENCHMARK_SYMBOL
from crypto_assets.timegrid import HOUR_NS
from crypto_assets.transforms.indicators import (
    normalize_ts,
    position_in_series,
    prepare_prices,
    rolling_reduce,
    series_bounds,
    sorted_bars,
    vwap,
)

WINDOW_24H = 24
WINDOW_6H = 6
# Float tolerance of correlation bounds: a Pearson correlation computed in float64 can exceed 1 by ~1e-15.
CORR_EPS = 1e-9


@dataclass(frozen=True, kw_only=True)
class _Bounded:
    """``ge``/``gt``/``le`` bound a present value (pandera's ``Field`` keywords of the same names)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def bounds(self) -> dict[str, float]:
        """The value bounds as pandera ``Field`` keywords, e.g. ``{"ge": 0, "le": 100}``."""
        return {k: v for k, v in (("ge", self.ge), ("gt", self.gt), ("le", self.le)) if v is not None}

    def bounds_text(self) -> str:
        """The bounds in words for the docs, e.g. ``0 <= x <= 100``; ``-`` when unbounded."""
        low = f"{_num(self.ge)} <= " if self.ge is not None else f"{_num(self.gt)} < " if self.gt is not None else ""
        high = f" <= {_num(self.le)}" if self.le is not None else ""
        return f"{low}x{high}" if low or high else "-"


@dataclass(frozen=True)
class FeatureSpec(_Bounded):
    """One feature of the vector: the single definition the code, the docs, the UI and the table schemas share.

    ``nullable`` says whether the value may be null in ``features.feature_vectors`` (a window still
    filling, a gap, no news coverage: ``null_when``). ``ml.training_set`` holds no null feature.
    """

    number: int
    name: str
    group: str
    formula: str
    window: str
    source: str
    null_when: str
    nullable: bool = True


def _num(value: float) -> str:
    return f"{value:g}"


_GAP_1_5 = "the 24-hour window [ts - 23h, ts] holds a gap (so also the first 23 bars of a series)"
_SENTIMENT_NULL = "news_coverage_24h is 0 (no provider looked: unknown), or no sentiment row for the bar"

FEATURE_CATALOGUE: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        1,
        "rsi_14",
        "technical",
        "ta.momentum.RSIIndicator(close, window=14).rsi() (0..100)",
        "14 bars, Wilder smoothing",
        "features.technical_indicators.rsi_14",
        f"the first 13 bars of a series; {_GAP_1_5}",
        ge=0,
        le=100,
    ),
    FeatureSpec(
        2,
        "macd_hist_norm",
        "technical",
        "ta.trend.MACD(close, 26, 12, 9).macd_diff() / close",
        "EMA 12/26, signal 9",
        "features.technical_indicators.macd_hist, raw.prices.close",
        f"the first 33 bars of a series; {_GAP_1_5}",
    ),
    FeatureSpec(
        3,
        "bb_pct_b",
        "technical",
        "ta.volatility.BollingerBands(close, 20, 2).bollinger_pband()",
        "20 bars",
        "features.technical_indicators.bb_pct_b",
        f"the first 19 bars of a series; the bands have no width; {_GAP_1_5}",
    ),
    FeatureSpec(
        4,
        "atr_14_pct",
        "technical",
        "ta.volatility.AverageTrueRange(high, low, close, 14) / close; null for the first 14 bars",
        "14 bars, Wilder smoothing",
        "features.technical_indicators.atr_14, raw.prices.close",
        f"the first 14 bars of a series; {_GAP_1_5}",
        ge=0,
    ),
    FeatureSpec(
        5,
        "ema_ratio_12_26",
        "technical",
        "EMA12(close) / EMA26(close) - 1 (ta.trend.EMAIndicator)",
        "EMA 12/26",
        "features.technical_indicators.ema_12, ema_26",
        f"the first 25 bars of a series; {_GAP_1_5}",
        gt=-1,
    ),
    FeatureSpec(
        6,
        "log_return_1h",
        "market structure",
        "ln(close_t / close_t-1h)",
        "bars at ts - 1h and ts",
        "raw.prices.close",
        "no bar at ts - 1h (a longer move is never a 1h return)",
    ),
    FeatureSpec(
        7,
        "realized_vol_24h",
        "market structure",
        "sample std (ddof=1) of log_return_1h over the bars at ts - 23h .. ts",
        "24 hours (25 bars)",
        "raw.prices.close",
        "a bar of ts - 24h .. ts is missing",
        ge=0,
    ),
    FeatureSpec(
        8,
        "volume_zscore_24h",
        "market structure",
        "(volume_t - mean24(volume)) / std24(volume) over the bars at ts - 23h .. ts, std ddof=1; 0 where std is 0",
        "24 hours",
        "raw.prices.volume",
        "a bar of ts - 23h .. ts is missing",
    ),
    FeatureSpec(
        9,
        "vwap_dev_24h",
        "market structure",
        "close_t / VWAP24 - 1, VWAP24 = sum(tp*volume)/sum(volume) over the bars at ts - 23h .. ts, "
        "tp = (high+low+close)/3",
        "24 hours",
        "raw.prices (high, low, close, volume)",
        "a bar of ts - 23h .. ts is missing; the 24 volumes sum to 0",
        gt=-1,
    ),
    FeatureSpec(
        10,
        "btc_corr_24h",
        "cross-asset",
        "Pearson correlation of the symbol's and BTC's log_return_1h over the hours ts - 23h .. ts; 1.0 for BTC",
        "24 hours (25 bars) of both",
        "raw.prices.close (symbol and BTC)",
        "a bar of ts - 24h .. ts is missing for the symbol or for BTC; either series is flat",
        ge=-1 - CORR_EPS,
        le=1 + CORR_EPS,
    ),
    FeatureSpec(
        11,
        "btc_rel_strength_24h",
        "cross-asset",
        "ln(close_t / close_t-24h) - ln(btc_t / btc_t-24h); 0.0 for BTC",
        "bars at ts - 24h and ts of both",
        "raw.prices.close (symbol and BTC)",
        "no bar at ts - 24h for the symbol, or none at ts or ts - 24h for BTC",
    ),
    FeatureSpec(
        12,
        "sentiment_mean_24h",
        "sentiment",
        "mean compound of the symbol's articles published in [ts - 23h, ts + 1h); 0.0 when none",
        "24 h",
        "features.sentiment_hourly (from features.article_sentiment)",
        _SENTIMENT_NULL,
        ge=-1,
        le=1,
    ),
    FeatureSpec(
        13,
        "news_volume_24h",
        "sentiment",
        "ln(1 + n), n = number of those articles",
        "24 h",
        "features.sentiment_hourly (from features.article_sentiment)",
        _SENTIMENT_NULL,
        ge=0,
    ),
    FeatureSpec(
        14,
        "sentiment_momentum_6h",
        "sentiment",
        "mean compound over [ts - 5h, ts + 1h) minus sentiment_mean_24h (each mean 0.0 when empty)",
        "6 h and 24 h",
        "features.sentiment_hourly (from features.article_sentiment)",
        _SENTIMENT_NULL,
        ge=-2,
        le=2,
    ),
    FeatureSpec(
        15,
        "hour_sin",
        "temporal",
        "sin(2*pi*hour(ts)/24), hour in UTC",
        "-",
        "ts",
        "never",
        nullable=False,
        ge=-1,
        le=1,
    ),
    FeatureSpec(
        16,
        "hour_cos",
        "temporal",
        "cos(2*pi*hour(ts)/24), hour in UTC",
        "-",
        "ts",
        "never",
        nullable=False,
        ge=-1,
        le=1,
    ),
)


@dataclass(frozen=True)
class ProvenanceSpec(_Bounded):
    """A provenance column of features.md "Gaps, venues and news coverage": carried, never a model input."""

    name: str
    integer: bool
    definition: str
    null_when: str

    @property
    def nullable(self) -> bool:
        """May be null in ``features.feature_vectors`` (never in ``ml.training_set``)."""
        return self.null_when != "never"


PROVENANCE_CATALOGUE: tuple[ProvenanceSpec, ...] = (
    ProvenanceSpec(
        "gap_hours_24h",
        True,
        "hours in [ts - 23h, ts] with no bar for the symbol (hours before a series' first bar count)",
        "never",
        ge=0,
        le=WINDOW_24H - 1,
    ),
    ProvenanceSpec(
        "venues_24h",
        True,
        "distinct providers that served the symbol's bars in [ts - 23h, ts] (2 or more: the series switched "
        "venue inside the window)",
        "never",
        ge=0,
    ),
    ProvenanceSpec(
        "news_coverage_24h",
        False,
        "share of the hours in [ts - 23h, ts] lying fully inside a successful news provider answer's window "
        "(raw.news_coverage status ok, any provider)",
        "no sentiment row for the bar",
        ge=0,
        le=1,
    ),
)


def feature_names() -> tuple[str, ...]:
    """The 16 feature names in features.md order."""
    return tuple(spec.name for spec in FEATURE_CATALOGUE)


FEATURE_NAMES: tuple[str, ...] = feature_names()
PROVENANCE_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in PROVENANCE_CATALOGUE)
TECHNICAL_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "technical")
MARKET_STRUCTURE_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "market structure")
CROSS_ASSET_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "cross-asset")
SENTIMENT_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "sentiment")
TEMPORAL_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "temporal")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def feature_catalogue_markdown() -> str:
    """The catalogue as a markdown table (asset descriptions, docs)."""
    lines = [
        "| # | name | group | formula | window | range | null when | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in FEATURE_CATALOGUE:
        cells = [str(s.number), f"`{s.name}`", s.group, s.formula, s.window, s.bounds_text(), s.null_when, s.source]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def provenance_markdown() -> str:
    """The provenance columns as a markdown table."""
    lines = ["| column | type | definition | null when |", "|---|---|---|---|"]
    for s in PROVENANCE_CATALOGUE:
        kind = "integer" if s.integer else "double"
        lines.append("| " + " | ".join(_cell(c) for c in (f"`{s.name}`", kind, s.definition, s.null_when)) + " |")
    return "\n".join(lines) + "\n"


# --- the hourly grid ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """Where each bar of a frame sorted by (symbol, ts) sits on its symbol's hourly grid.

    ``prev``/``back24`` are the row numbers of the bars at ``ts - 1h`` / ``ts - 24h`` (-1: none);
    ``gap_hours`` counts the hours of ``[ts - 23h, ts]`` without a bar.
    """

    hours: np.ndarray
    position: np.ndarray
    window_lo: np.ndarray
    gap_hours: np.ndarray
    prev: np.ndarray
    back24: np.ndarray

    @property
    def full24(self) -> np.ndarray:
        """Bars at every hour of ``[ts - 23h, ts]``."""
        return self.gap_hours == 0

    @property
    def full25(self) -> np.ndarray:
        """Bars at every hour of ``[ts - 24h, ts]``: the 24 hourly returns of the window all exist."""
        return self.full24 & (self.back24 >= 0)


def _find(sorted_keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each wanted key in ``sorted_keys`` (unique), -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    idx = np.searchsorted(sorted_keys, wanted)
    clipped = np.minimum(idx, len(sorted_keys) - 1)
    return np.where(sorted_keys[clipped] == wanted, clipped, -1)


def _grid(symbols: np.ndarray, ts: pd.Series) -> _Grid:
    """The grid of a frame sorted by (symbol, ts) with unique keys; ValueError if a ``ts`` is off the hour."""
    ts_ns = ts.array.asi8
    off = ts_ns % HOUR_NS != 0
    if off.any():
        raise ValueError(f"bar times must be on the hour (bar open, UTC); got {ts.iloc[int(np.argmax(off))]}")
    hours = ts_ns // HOUR_NS
    n = len(hours)
    rank = np.zeros(n, dtype=np.int64)
    for k, (start, stop) in enumerate(series_bounds(symbols)):
        rank[start:stop] = k
    # keys = symbol rank << 32 | hour number: sorted like the frame, so np.searchsorted finds the bar of a
    # symbol at any hour. Hours relative to the frame's first one, so that the lags below never wrap into
    # another symbol's keys.
    rel = hours - (hours.min() - 2 * WINDOW_24H) if n else hours
    keys = (rank << 32) + rel
    window_lo = np.searchsorted(keys, keys - (WINDOW_24H - 1), side="left")
    gap_hours = (WINDOW_24H - (np.arange(n) - window_lo + 1)).astype(np.int64)
    return _Grid(
        hours=hours,
        position=position_in_series(symbols),
        window_lo=window_lo,
        gap_hours=gap_hours,
        prev=_find(keys, keys - 1),
        back24=_find(keys, keys - WINDOW_24H),
    )


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` as float64, NaN where ``idx`` is -1."""
    out = np.full(len(idx), np.nan)
    found = idx >= 0
    out[found] = values[idx[found]]
    return out


def _venues(grid: _Grid, symbols: np.ndarray, providers: pd.Series) -> np.ndarray:
    """Distinct non-null providers of each row's bars in ``[ts - 23h, ts]``.

    A bar counts when it is the first of its provider in the window, i.e. the symbol's previous bar of the
    same provider lies before the window: 24 vectorised passes (one per row offset), memory O(rows).
    """
    n = len(symbols)
    codes, _ = pd.factorize(providers.to_numpy(), use_na_sentinel=True)
    rows = pd.Series(np.arange(n))
    sym_codes, _ = pd.factorize(symbols)
    prev_same = rows.groupby([sym_codes, codes], sort=False).shift(1).fillna(-1).to_numpy(dtype=np.int64)
    counted = codes >= 0
    out = np.zeros(n, dtype=np.int64)
    i = np.arange(n)
    for k in range(WINDOW_24H):
        j = i - k
        inside = j >= grid.window_lo  # j >= window_lo >= the symbol's first row, so j is a row of the symbol
        jj = np.where(inside, j, 0)
        out += inside & counted[jj] & (prev_same[jj] < grid.window_lo)
    return out


# --- internals on a frame already passed through prepare_prices (sorted, unique) ---


def _log_return(p: pd.DataFrame, grid: _Grid) -> np.ndarray:
    close = p["close"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(close / _take(close, grid.prev))
    lr[~np.isfinite(lr)] = np.nan
    return lr


def _aligned(frame: pd.DataFrame, p: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """``frame[columns]`` for p's (symbol, ts) rows, in p's order; rows frame lacks are null."""
    keys = pd.DataFrame({"symbol": frame["symbol"].astype(str).to_numpy(), "ts": normalize_ts(frame["ts"]).array})
    if (
        len(keys) == len(p)
        and np.array_equal(keys["symbol"].to_numpy(), p["symbol"].to_numpy())
        and np.array_equal(keys["ts"].array.asi8, p["ts"].array.asi8)
    ):
        return pd.DataFrame({c: frame[c].to_numpy(dtype="float64") for c in columns})
    right = keys.assign(**{c: frame[c].to_numpy(dtype="float64") for c in columns})
    if right.duplicated(["symbol", "ts"]).any():
        raise ValueError("frame has duplicate (symbol, ts) rows")
    merged = p[["symbol", "ts"]].merge(right, on=["symbol", "ts"], how="left", sort=False)
    return merged[list(columns)].reset_index(drop=True)


def _technical(indicators: pd.DataFrame, p: pd.DataFrame, grid: _Grid) -> dict[str, np.ndarray]:
    ind = _aligned(indicators, p, ["rsi_14", "macd_hist", "bb_pct_b", "atr_14", "ema_12", "ema_26"])
    close = p["close"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = {
            "rsi_14": ind["rsi_14"].to_numpy(),
            "macd_hist_norm": ind["macd_hist"].to_numpy() / close,
            "bb_pct_b": ind["bb_pct_b"].to_numpy(),
            "atr_14_pct": ind["atr_14"].to_numpy() / close,
            "ema_ratio_12_26": ind["ema_12"].to_numpy() / ind["ema_26"].to_numpy() - 1.0,
        }
    # ta runs over the existing bars; where the last 24 hours hold a gap, its values mix across the gap.
    return {name: np.where(grid.full24, values, np.nan) for name, values in cols.items()}


def _zscore_last(w: np.ndarray) -> np.ndarray:
    mean = w.mean(axis=1)
    std = w.std(axis=1, ddof=1)
    z = (w[:, -1] - mean) / std
    # A constant window has std 0 by definition; test max == min rather than std == 0, because the
    # float mean of 24 equal values can differ from them by an ulp and leave a spurious tiny std.
    constant = w.max(axis=1) == w.min(axis=1)
    z[constant] = 0.0
    return z


def _market_structure(p: pd.DataFrame, grid: _Grid, lr: np.ndarray) -> dict[str, np.ndarray]:
    # With no hour missing, the 24 rows ending at a row are the bars at ts - 23h .. ts: row windows, masked.
    full24, full25 = grid.full24, grid.full25
    vw = vwap(p, grid.position, WINDOW_24H)
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap_dev = p["close"].to_numpy() / vw - 1.0
    vol = rolling_reduce(lambda w: w.std(axis=1, ddof=1), [lr], WINDOW_24H, grid.position)
    zscore = rolling_reduce(_zscore_last, [p["volume"].to_numpy()], WINDOW_24H, grid.position)
    return {
        "log_return_1h": lr,
        "realized_vol_24h": np.where(full25, vol, np.nan),
        "volume_zscore_24h": np.where(full24, zscore, np.nan),
        "vwap_dev_24h": np.where(full24, vwap_dev, np.nan),
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    corr = (dx * dy).sum(axis=1) / den
    corr[den == 0] = np.nan  # a flat series has no defined correlation
    return np.clip(corr, -1.0, 1.0)


def _cross_asset(p: pd.DataFrame, grid: _Grid, lr: np.ndarray, benchmark: str) -> dict[str, np.ndarray]:
    is_bench = p["symbol"].to_numpy() == benchmark
    bench_hours = grid.hours[is_bench]  # sorted: the benchmark's rows are one contiguous, ts-sorted block
    close = p["close"].to_numpy()
    bench_close, bench_lr = close[is_bench], lr[is_bench]

    # The benchmark's values at each row's ts and ts - 24h (null where it has no bar then).
    at_ts = _find(bench_hours, grid.hours)
    btc_lr = _take(bench_lr, at_ts)
    btc_close = _take(bench_close, at_ts)
    btc_close_back = _take(bench_close, _find(bench_hours, grid.hours - WINDOW_24H))
    close_back = _take(close, grid.back24)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.log(close / close_back)
        rel = own - np.log(btc_close / btc_close_back)
    rel[~np.isfinite(rel)] = np.nan

    # Symbol's 24 hourly returns complete (full25); any missing benchmark return makes the window null.
    corr = rolling_reduce(_pearson, [lr, btc_lr], WINDOW_24H, grid.position)
    corr = np.where(grid.full25, corr, np.nan)
    if is_bench.any():
        corr[is_bench] = np.where(grid.full25[is_bench], 1.0, np.nan)  # exactly 1.0 where its window is complete
        rel[is_bench] = np.where(np.isfinite(own[is_bench]), 0.0, np.nan)
    return {"btc_corr_24h": corr, "btc_rel_strength_24h": rel}


def _temporal(ts: pd.Series) -> dict[str, np.ndarray]:
    hour = normalize_ts(ts).dt.hour.to_numpy(dtype="float64")
    angle = 2.0 * np.pi * hour / 24.0
    return {"hour_sin": np.sin(angle), "hour_cos": np.cos(angle)}


def _frame(p: pd.DataFrame, cols: dict[str, np.ndarray], names: tuple[str, ...]) -> pd.DataFrame:
    out = p[["symbol", "ts"]].copy()
    for name in names:
        values = np.asarray(cols[name], dtype="float64")
        out[name] = np.where(np.isfinite(values), values, np.nan)
    return out


def _prepared(prices: pd.DataFrame, extra: tuple[str, ...] = ()) -> tuple[pd.DataFrame, _Grid]:
    p = prepare_prices(prices, extra)
    return p, _grid(p["symbol"].to_numpy(), p["ts"])


def _prepared_with_provider(prices: pd.DataFrame) -> tuple[pd.DataFrame, _Grid]:
    if "provider" not in prices.columns:
        raise ValueError("prices frame lacks the provider column (venues_24h counts the providers of the bars)")
    return _prepared(prices, ("provider",))


def _provenance(p: pd.DataFrame, grid: _Grid) -> dict[str, np.ndarray]:
    return {"gap_hours_24h": grid.gap_hours, "venues_24h": _venues(grid, p["symbol"].to_numpy(), p["provider"])}


# --- public API ---


def technical_features(indicators: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Features 1-5 from the technical indicators (see ``indicators.technical_indicators``).

    - ``rsi_14`` = ``rsi_14``
    - ``macd_hist_norm`` = ``macd_hist / close``
    - ``bb_pct_b`` = ``bb_pct_b``
    - ``atr_14_pct`` = ``atr_14 / close`` (null for the first 14 bars, as ``atr_14`` is)
    - ``ema_ratio_12_26`` = ``ema_12 / ema_26 - 1``

    The indicators run over the symbol's existing bars (ta's semantics); every feature is null on a row whose
    24-hour window ``[ts - 23h, ts]`` holds a gap (hours before a series' first bar included).
    One row per prices bar (symbol, ts + the 5 features, sorted); a bar without an indicators row is null.
    """
    p, grid = _prepared(prices)
    return _frame(p, _technical(indicators, p, grid), TECHNICAL_FEATURES)


def market_structure_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Features 6-9, per symbol, on the hourly grid.

    - ``log_return_1h`` = ``ln(close_t / close_{t-1h})``; null without a bar at ``ts - 1h``
    - ``realized_vol_24h`` = sample std (ddof=1) of the returns of the hours ``ts - 23h .. ts``; needs the
      bars at ``ts - 24h .. ts``
    - ``volume_zscore_24h`` = ``(volume_t - mean24) / std24`` (ddof=1) over the bars at ``ts - 23h .. ts``,
      0 when the 24 volumes are equal
    - ``vwap_dev_24h`` = ``close_t / VWAP24 - 1``, ``VWAP24 = sum(tp*volume)/sum(volume)`` over the same
      bars, ``tp = (high+low+close)/3``; also null where the 24 volumes sum to 0
    A window missing any hour is null.
    """
    p, grid = _prepared(prices)
    return _frame(p, _market_structure(p, grid, _log_return(p, grid)), MARKET_STRUCTURE_FEATURES)


def cross_asset_features(prices: pd.DataFrame, benchmark: str = BENCHMARK_SYMBOL) -> pd.DataFrame:
    """Features 10-11 against the benchmark's bars at the same hours (``prices`` must include it).

    - ``btc_corr_24h``: Pearson correlation of the symbol's and the benchmark's ``log_return_1h`` over the
      hours ``ts - 23h .. ts``; exactly 1.0 for the benchmark itself. Null where either lacks a bar of
      ``ts - 24h .. ts``, and where either series is flat over the window (undefined).
    - ``btc_rel_strength_24h`` = ``ln(c_t / c_{t-24h}) - ln(b_t / b_{t-24h})``; exactly 0.0 for the
      benchmark. Null where the symbol lacks its bar at ``ts - 24h`` or the benchmark either bar.
    Without benchmark rows in ``prices``, both are null for every symbol.
    """
    p, grid = _prepared(prices)
    return _frame(p, _cross_asset(p, grid, _log_return(p, grid), benchmark), CROSS_ASSET_FEATURES)


def temporal_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Features 15-16: ``hour_sin = sin(2*pi*h/24)``, ``hour_cos = cos(2*pi*h/24)``, ``h`` = UTC hour of ``ts``.

    Returns symbol, ts, hour_sin, hour_cos in ``frame``'s row order.
    """
    out = pd.DataFrame({"symbol": frame["symbol"].astype(str).to_numpy(), "ts": normalize_ts(frame["ts"]).array})
    for name, values in _temporal(out["ts"]).items():
        out[name] = values
    return out


def bar_provenance(prices: pd.DataFrame) -> pd.DataFrame:
    """symbol, ts, ``gap_hours_24h`` and ``venues_24h`` (int64) per bar of ``prices``, sorted by (symbol, ts).

    ``gap_hours_24h``: hours of ``[ts - 23h, ts]`` with no bar of the symbol; ``venues_24h``: distinct
    ``provider`` values of the symbol's bars in that window (``prices`` needs a ``provider`` column).
    """
    p, grid = _prepared_with_provider(prices)
    return p[["symbol", "ts"]].assign(**_provenance(p, grid))


def complete_windows(bars: pd.DataFrame, benchmark: str = BENCHMARK_SYMBOL) -> pd.DataFrame:
    """Where the gap rules of features.md leave a price-derived feature to compute: symbol, ts and one boolean
    per feature of groups technical, market structure, cross-asset and temporal, sorted by (symbol, ts).

    True means the lag or window the feature needs is complete at that bar (1-5: no gap in ``[ts - 23h, ts]``;
    6: a bar at ``ts - 1h``; 7: bars at ``ts - 24h .. ts``; 8-9: ``ts - 23h .. ts``; 10: 7 for the symbol
    and the benchmark; 11: bars at ``ts - 24h`` of both and at ``ts`` of the benchmark; 15-16: always), so a
    null there is a defect, not a gap. The warm-up of the ``ta`` indicators is not part of it. ``bars``
    needs ``symbol`` and ``ts`` only.
    """
    keys = sorted_bars(bars, what="bars")
    symbols = keys["symbol"].to_numpy()
    grid = _grid(symbols, keys["ts"])
    is_bench = symbols == benchmark
    bench_hours = grid.hours[is_bench]
    bench_full25 = grid.full25[is_bench]
    at_ts = _find(bench_hours, grid.hours)
    btc_full25 = np.zeros(len(keys), dtype=bool)
    btc_full25[at_ts >= 0] = bench_full25[at_ts[at_ts >= 0]]
    btc_back = (at_ts >= 0) & (_find(bench_hours, grid.hours - WINDOW_24H) >= 0)
    has_prev, has_back = grid.prev >= 0, grid.back24 >= 0
    rules = {
        **dict.fromkeys(TECHNICAL_FEATURES, grid.full24),
        "log_return_1h": has_prev,
        "realized_vol_24h": grid.full25,
        "volume_zscore_24h": grid.full24,
        "vwap_dev_24h": grid.full24,
        "btc_corr_24h": grid.full25 & btc_full25,
        "btc_rel_strength_24h": has_back & btc_back,
        **dict.fromkeys(TEMPORAL_FEATURES, np.ones(len(keys), dtype=bool)),
    }
    return keys.assign(**{name: np.asarray(mask, dtype=bool) for name, mask in rules.items()})


def build_feature_vectors(
    prices: pd.DataFrame,
    indicators: pd.DataFrame,
    sentiment_hourly: pd.DataFrame | None,
    benchmark: str = BENCHMARK_SYMBOL,
) -> pd.DataFrame:
    """symbol, ts, the 16 features (:data:`FEATURE_NAMES`) and the provenance columns (:data:`PROVENANCE_COLUMNS`),
    one row per prices bar, sorted by (symbol, ts).

    The 16 features are float64; ``gap_hours_24h`` and ``venues_24h`` int64 (see :func:`bar_provenance`,
    ``prices`` needs its ``provider`` column); ``news_coverage_24h`` float64.

    ``indicators`` should be computed from the same bars (with look-back, see ``LOOKBACK_BARS``).
    Sentiment features 12-14 and ``news_coverage_24h`` are taken as they are from ``sentiment_hourly`` by
    (symbol, ts); that table encodes "looked, no articles" as 0.0 and "nobody looked" (coverage 0) as null,
    and the sentiment features are nulled here too wherever its coverage is 0. A bar with no
    ``sentiment_hourly`` row (the sentiment partition was not computed, or ``sentiment_hourly`` is None) gets
    **null** sentiment features and coverage, not 0.0: absence of the computation is not evidence of zero news,
    and the caller decides (the training set drops such rows).
    """
    p, grid = _prepared_with_provider(prices)
    lr = _log_return(p, grid)
    cols: dict[str, np.ndarray] = {}
    cols.update(_technical(indicators, p, grid))
    cols.update(_market_structure(p, grid, lr))
    cols.update(_cross_asset(p, grid, lr, benchmark))
    if sentiment_hourly is None:
        cols.update({name: np.full(len(p), np.nan) for name in SENTIMENT_FEATURES})
        coverage = np.full(len(p), np.nan)
    else:
        if "news_coverage_24h" not in sentiment_hourly.columns:
            raise ValueError("sentiment_hourly lacks news_coverage_24h (features.md: null sentiment without coverage)")
        sent = _aligned(sentiment_hourly, p, (*SENTIMENT_FEATURES, "news_coverage_24h"))
        coverage = sent["news_coverage_24h"].to_numpy()
        unknown = ~(coverage > 0)  # coverage 0 or no row: nobody looked
        cols.update({name: np.where(unknown, np.nan, sent[name].to_numpy()) for name in SENTIMENT_FEATURES})
    cols.update(_temporal(p["ts"]))
    out = _frame(p, cols, FEATURE_NAMES)
    for name, values in _provenance(p, grid).items():
        out[name] = values
    out["news_coverage_24h"] = coverage.astype("float64")
    return out


_DOCUMENT_INTRO = """# The 16-feature vector

One row per (symbol, hourly bar) in `features.feature_vectors` and `ml.training_set`. The contract is
`features.md` of the project spec; the tables below are generated from the single definition in code
(`crypto_assets.transforms.features.FEATURE_CATALOGUE` and `PROVENANCE_CATALOGUE`), which also makes the
table schemas (pandera models, DuckDB DDL, the column schema shown in the Dagster UI) and the asset
description. A test fails when this file and the code disagree; regenerate it with
`.venv/bin/python -m crypto_assets.transforms.features > docs/features.md`.

- `ts` is the bar's open time (UTC); the bar closes at `ts + 1h`. A value for bar `ts` uses only bars with
  open time `<= ts` and articles published before `ts + 1h` (no leakage).
- Lags and windows count **hours on the UTC grid, not rows**: the previous bar is the bar at `ts - 1h`, "the
  last 24 bars" are the bars at `ts - 23h .. ts`. A missing bar is never invented: a lag or window missing
  an hour is null, so a 4-hour move is never a "1h" return.
- A feature whose window is not full yet is null (never 0); the training set keeps only rows where all 16
  features and both labels are present.
- Indicators come from `ta` 0.11 (ATR is a vectorised re-implementation of `ta`'s formula, equal to it
  within 1e-12) over the symbol's existing bars. Partitions read 14 days of look-back so values equal a
  whole-history computation within 1e-6 relative (7 days are not enough for MACD and the EMA ratio).
"""

_DOCUMENT_RULES = """## Gaps, venues and news coverage

Every row of `features.feature_vectors` and `ml.training_set` also carries three provenance columns. They
are not features and are never fed to a model by default.

{provenance}
Null rules (the "null when" column above):

- Features 6-9 are null when their lag or window is incomplete for the symbol; features 10-11 when it is
  incomplete for the symbol or for BTC.
- Features 1-5 are computed over the symbol's existing bars in `ts` order (`ta`'s semantics) and are null on
  rows whose 24-hour window holds a gap (`gap_hours_24h > 0`), so a gap's distortion never reaches a model.
- Features 12-14 are null when `news_coverage_24h` is 0 (nobody looked: unknown); otherwise they follow
  their formulas, and 0.0 means "looked, found nothing". Hour `h` (= `[h, h + 1h)`) is covered when it lies
  fully inside the union of the windows of `raw.news_coverage` rows with status `ok`, of any provider.
- The blocking check `feature_null_rates` judges each feature only on rows where its lag or window is
  complete (after each series' 35-bar warm-up for features 1-5, and with news coverage for 12-14): a genuine
  gap never stops the training set, a null inside a complete window still does.
- The labels need the bar at `ts + 1h`; without it they are null and the row stays out of the training set.
"""


def feature_catalogue_document() -> str:
    """docs/features.md: the catalogue with a short introduction, the provenance columns and the null rules."""
    rules = _DOCUMENT_RULES.format(provenance=provenance_markdown())
    return f"{_DOCUMENT_INTRO}\n{feature_catalogue_markdown()}\n{rules}"


if __name__ == "__main__":
    print(feature_catalogue_document(), end="")
