"""The 16-feature vector of features.md: one pure, vectorised function per feature group.

Pandas in, pandas out; no Dagster, no I/O. Every function works on each symbol's own series ordered by
`ts`, and its windows count bars ending at and including bar `ts` (a missing bar is never invented:
the window reaches one bar further back). A value whose window is not full is null, never 0.

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
from crypto_assets.transforms.indicators import (
    normalize_ts,
    position_in_series,
    prepare_prices,
    rolling_reduce,
    vwap,
)

WINDOW_24H = 24
WINDOW_6H = 6


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the vector: the single definition the code, the docs and the UI share."""

    number: int
    name: str
    group: str
    formula: str
    window: str
    source: str


FEATURE_CATALOGUE: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        1,
        "rsi_14",
        "technical",
        "ta.momentum.RSIIndicator(close, window=14).rsi() (0..100)",
        "14 bars, Wilder smoothing",
        "features.technical_indicators.rsi_14",
    ),
    FeatureSpec(
        2,
        "macd_hist_norm",
        "technical",
        "ta.trend.MACD(close, 26, 12, 9).macd_diff() / close",
        "EMA 12/26, signal 9",
        "features.technical_indicators.macd_hist, raw.prices.close",
    ),
    FeatureSpec(
        3,
        "bb_pct_b",
        "technical",
        "ta.volatility.BollingerBands(close, 20, 2).bollinger_pband()",
        "20 bars",
        "features.technical_indicators.bb_pct_b",
    ),
    FeatureSpec(
        4,
        "atr_14_pct",
        "technical",
        "ta.volatility.AverageTrueRange(high, low, close, 14) / close; null for the first 14 bars",
        "14 bars, Wilder smoothing",
        "features.technical_indicators.atr_14, raw.prices.close",
    ),
    FeatureSpec(
        5,
        "ema_ratio_12_26",
        "technical",
        "EMA12(close) / EMA26(close) - 1 (ta.trend.EMAIndicator)",
        "EMA 12/26",
        "features.technical_indicators.ema_12, ema_26",
    ),
    FeatureSpec(
        6,
        "log_return_1h",
        "market structure",
        "ln(close_t / close_t-1)",
        "2 bars",
        "raw.prices.close",
    ),
    FeatureSpec(
        7,
        "realized_vol_24h",
        "market structure",
        "sample std (ddof=1) of log_return_1h over the last 24 bars",
        "24 bars",
        "raw.prices.close",
    ),
    FeatureSpec(
        8,
        "volume_zscore_24h",
        "market structure",
        "(volume_t - mean24(volume)) / std24(volume), std ddof=1; 0 where std is 0",
        "24 bars",
        "raw.prices.volume",
    ),
    FeatureSpec(
        9,
        "vwap_dev_24h",
        "market structure",
        "close_t / VWAP24 - 1, VWAP24 = sum(tp*volume)/sum(volume), tp = (high+low+close)/3",
        "24 bars",
        "raw.prices (high, low, close, volume)",
    ),
    FeatureSpec(
        10,
        "btc_corr_24h",
        "cross-asset",
        "Pearson correlation of the symbol's and BTC's log_return_1h over the last 24 bars, aligned on ts; 1.0 for BTC",
        "24 bars",
        "raw.prices.close (symbol and BTC)",
    ),
    FeatureSpec(
        11,
        "btc_rel_strength_24h",
        "cross-asset",
        "ln(close_t / close_t-24) - ln(btc_t / btc_t-24); 0.0 for BTC",
        "25 bars",
        "raw.prices.close (symbol and BTC)",
    ),
    FeatureSpec(
        12,
        "sentiment_mean_24h",
        "sentiment",
        "mean compound of the symbol's articles published in [ts - 23h, ts + 1h); 0.0 when none",
        "24 h",
        "features.sentiment_hourly (from features.article_sentiment)",
    ),
    FeatureSpec(
        13,
        "news_volume_24h",
        "sentiment",
        "ln(1 + n), n = number of those articles",
        "24 h",
        "features.sentiment_hourly (from features.article_sentiment)",
    ),
    FeatureSpec(
        14,
        "sentiment_momentum_6h",
        "sentiment",
        "mean compound over [ts - 5h, ts + 1h) minus sentiment_mean_24h (each mean 0.0 when empty)",
        "6 h and 24 h",
        "features.sentiment_hourly (from features.article_sentiment)",
    ),
    FeatureSpec(
        15,
        "hour_sin",
        "temporal",
        "sin(2*pi*hour(ts)/24), hour in UTC",
        "-",
        "ts",
    ),
    FeatureSpec(
        16,
        "hour_cos",
        "temporal",
        "cos(2*pi*hour(ts)/24), hour in UTC",
        "-",
        "ts",
    ),
)


def feature_names() -> tuple[str, ...]:
    """The 16 feature names in features.md order."""
    return tuple(spec.name for spec in FEATURE_CATALOGUE)


FEATURE_NAMES: tuple[str, ...] = feature_names()
TECHNICAL_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "technical")
MARKET_STRUCTURE_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "market structure")
CROSS_ASSET_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "cross-asset")
SENTIMENT_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "sentiment")
TEMPORAL_FEATURES = tuple(s.name for s in FEATURE_CATALOGUE if s.group == "temporal")


def feature_catalogue_markdown() -> str:
    """The catalogue as a markdown table (asset descriptions, docs)."""
    lines = [
        "| # | name | group | formula | window | source |",
        "|---|---|---|---|---|---|",
    ]
    for s in FEATURE_CATALOGUE:
        cells = [str(s.number), f"`{s.name}`", s.group, s.formula, s.window, s.source]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


# --- internals on a frame already passed through prepare_prices (sorted, unique) ---


def _log_return(p: pd.DataFrame, position: np.ndarray) -> np.ndarray:
    close = p["close"].to_numpy()
    prev = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.log(close / prev)
    lr[position == 0] = np.nan
    lr[~np.isfinite(lr)] = np.nan
    return lr


def _shift_in_series(values: np.ndarray, position: np.ndarray, k: int) -> np.ndarray:
    """values[i - k] within the same symbol's series (null for the first k bars)."""
    out = np.full(len(values), np.nan, dtype="float64")
    if len(values) > k:
        out[k:] = values[:-k]
    out[position < k] = np.nan
    return out


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


def _technical(indicators: pd.DataFrame, p: pd.DataFrame) -> dict[str, np.ndarray]:
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
    return cols


def _zscore_last(w: np.ndarray) -> np.ndarray:
    mean = w.mean(axis=1)
    std = w.std(axis=1, ddof=1)
    z = (w[:, -1] - mean) / std
    # A constant window has std 0 by definition; test max == min rather than std == 0, because the
    # float mean of 24 equal values can differ from them by an ulp and leave a spurious tiny std.
    constant = w.max(axis=1) == w.min(axis=1)
    z[constant] = 0.0
    return z


def _market_structure(p: pd.DataFrame, position: np.ndarray, lr: np.ndarray) -> dict[str, np.ndarray]:
    vw = vwap(p, position, WINDOW_24H)
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap_dev = p["close"].to_numpy() / vw - 1.0
    return {
        "log_return_1h": lr,
        "realized_vol_24h": rolling_reduce(lambda w: w.std(axis=1, ddof=1), [lr], WINDOW_24H, position),
        "volume_zscore_24h": rolling_reduce(_zscore_last, [p["volume"].to_numpy()], WINDOW_24H, position),
        "vwap_dev_24h": vwap_dev,
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    corr = (dx * dy).sum(axis=1) / den
    corr[den == 0] = np.nan  # a flat series has no defined correlation
    return np.clip(corr, -1.0, 1.0)


def _all_present(w: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(w).any(axis=1), np.nan, 1.0)


def _cross_asset(p: pd.DataFrame, position: np.ndarray, lr: np.ndarray, benchmark: str) -> dict[str, np.ndarray]:
    symbols = p["symbol"].to_numpy()
    is_bench = symbols == benchmark
    ts = pd.DatetimeIndex(p["ts"])
    bench_ts = ts[is_bench]
    bench_lr = pd.Series(lr[is_bench], index=bench_ts)
    bench_close = pd.Series(p["close"].to_numpy()[is_bench], index=bench_ts)

    # The benchmark's own values (its log return relative to its own previous bar), looked up at each row's ts.
    btc_lr = bench_lr.reindex(ts).to_numpy()
    btc_close = bench_close.reindex(ts).to_numpy()
    has_back = position >= WINDOW_24H
    btc_close_back = np.full(len(p), np.nan)
    btc_close_back[has_back] = bench_close.reindex(ts[np.flatnonzero(has_back) - WINDOW_24H]).to_numpy()

    close = p["close"].to_numpy()
    close_back = _shift_in_series(close, position, WINDOW_24H)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.log(close / close_back) - np.log(btc_close / btc_close_back)
    rel[~np.isfinite(rel)] = np.nan

    corr = rolling_reduce(_pearson, [lr, btc_lr], WINDOW_24H, position)
    if is_bench.any():
        full = rolling_reduce(_all_present, [lr], WINDOW_24H, position)
        corr[is_bench] = full[is_bench]  # exactly 1.0 where the window is full
        with np.errstate(divide="ignore", invalid="ignore"):
            own = np.log(close / close_back)
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


# --- public API ---


def technical_features(indicators: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Features 1-5 from the technical indicators (see ``indicators.technical_indicators``).

    - ``rsi_14`` = ``rsi_14``
    - ``macd_hist_norm`` = ``macd_hist / close``
    - ``bb_pct_b`` = ``bb_pct_b``
    - ``atr_14_pct`` = ``atr_14 / close`` (null for the first 14 bars, as ``atr_14`` is)
    - ``ema_ratio_12_26`` = ``ema_12 / ema_26 - 1``

    One row per prices bar (symbol, ts + the 5 features, sorted); a bar without an indicators row is null.
    """
    p = prepare_prices(prices)
    return _frame(p, _technical(indicators, p), TECHNICAL_FEATURES)


def market_structure_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Features 6-9, per symbol, windows of 24 bars ending at and including ``ts``.

    - ``log_return_1h`` = ``ln(close_t / close_{t-1})`` (previous bar of the series); null on its first bar
    - ``realized_vol_24h`` = sample std (ddof=1) of the last 24 ``log_return_1h``; needs 25 bars
    - ``volume_zscore_24h`` = ``(volume_t - mean24) / std24`` (ddof=1), 0 when the 24 volumes are equal;
      null until 24 bars
    - ``vwap_dev_24h`` = ``close_t / VWAP24 - 1``, ``VWAP24 = sum(tp*volume)/sum(volume)`` over 24 bars,
      ``tp = (high+low+close)/3``; null until 24 bars, and where the 24 volumes sum to 0
    """
    p = prepare_prices(prices)
    position = position_in_series(p["symbol"].to_numpy())
    return _frame(p, _market_structure(p, position, _log_return(p, position)), MARKET_STRUCTURE_FEATURES)


def cross_asset_features(prices: pd.DataFrame, benchmark: str = BENCHMARK_SYMBOL) -> pd.DataFrame:
    """Features 10-11 against the benchmark's bars at the same ``ts`` (``prices`` must include it).

    - ``btc_corr_24h``: Pearson correlation of the symbol's last 24 ``log_return_1h`` with the benchmark's
      ``log_return_1h`` at the same 24 ``ts``; exactly 1.0 for the benchmark itself (once it has 24
      returns); null where the benchmark lacks a bar at one of those ``ts``, before the window is full,
      and where either series is flat over the window (undefined).
    - ``btc_rel_strength_24h`` = ``ln(c_t / c_{t-24}) - ln(b_t / b_{t-24})`` where ``t-24`` is the symbol's
      bar 24 bars back and ``b`` the benchmark's close at the same ``ts`` values; exactly 0.0 for the
      benchmark; null where the benchmark lacks either bar or before bar 25.
    Without benchmark rows in ``prices``, both are null for every symbol.
    """
    p = prepare_prices(prices)
    position = position_in_series(p["symbol"].to_numpy())
    return _frame(p, _cross_asset(p, position, _log_return(p, position), benchmark), CROSS_ASSET_FEATURES)


def temporal_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Features 15-16: ``hour_sin = sin(2*pi*h/24)``, ``hour_cos = cos(2*pi*h/24)``, ``h`` = UTC hour of ``ts``.

    Returns symbol, ts, hour_sin, hour_cos in ``frame``'s row order.
    """
    out = pd.DataFrame({"symbol": frame["symbol"].astype(str).to_numpy(), "ts": normalize_ts(frame["ts"]).array})
    for name, values in _temporal(out["ts"]).items():
        out[name] = values
    return out


def build_feature_vectors(
    prices: pd.DataFrame,
    indicators: pd.DataFrame,
    sentiment_hourly: pd.DataFrame | None,
    benchmark: str = BENCHMARK_SYMBOL,
) -> pd.DataFrame:
    """symbol, ts + :data:`FEATURE_NAMES` (float64), one row per prices bar, sorted by (symbol, ts).

    ``indicators`` should be computed from the same bars (with look-back, see ``LOOKBACK_BARS``).
    Sentiment features 12-14 are taken as they are from ``sentiment_hourly`` by (symbol, ts); that table
    already encodes "no articles" as 0.0. A bar with no ``sentiment_hourly`` row (the sentiment partition
    was not computed, or ``sentiment_hourly`` is None) gets **null** sentiment features, not 0.0: absence
    of the computation is not evidence of zero news, and the caller decides (the training set drops such rows).
    """
    p = prepare_prices(prices)
    position = position_in_series(p["symbol"].to_numpy())
    lr = _log_return(p, position)
    cols: dict[str, np.ndarray] = {}
    cols.update(_technical(indicators, p))
    cols.update(_market_structure(p, position, lr))
    cols.update(_cross_asset(p, position, lr, benchmark))
    if sentiment_hourly is None:
        cols.update({name: np.full(len(p), np.nan) for name in SENTIMENT_FEATURES})
    else:
        sent = _aligned(sentiment_hourly, p, SENTIMENT_FEATURES)
        cols.update({name: sent[name].to_numpy() for name in SENTIMENT_FEATURES})
    cols.update(_temporal(p["ts"]))
    return _frame(p, cols, FEATURE_NAMES)


_DOCUMENT_INTRO = """# The 16-feature vector

One row per (symbol, hourly bar) in `features.feature_vectors` and `ml.training_set`. The contract is
`features.md` of the project spec; this table is generated from the single definition in code
(`crypto_assets.transforms.features.FEATURE_CATALOGUE`), which also feeds the asset description shown in
the Dagster UI. A test fails when this file and the code disagree; regenerate it with
`.venv/bin/python -m crypto_assets.transforms.features > docs/features.md`.

- `ts` is the bar's open time (UTC); the bar closes at `ts + 1h`. A value for bar `ts` uses only bars with
  open time `<= ts` and articles published before `ts + 1h` (no leakage).
- Windows count bars of the symbol's own series. A feature whose window is not full yet is null (never 0);
  the training set keeps only rows where all 16 features and both labels are present.
- Indicators come from `ta` 0.11 (ATR is a vectorised re-implementation of `ta`'s formula, equal to it
  within 1e-12). Partitions read 14 days of look-back so values equal a whole-history computation
  within 1e-6 relative (7 days are not enough for MACD and the EMA ratio).
"""


def feature_catalogue_document() -> str:
    """docs/features.md: the catalogue with a short introduction."""
    return f"{_DOCUMENT_INTRO}\n{feature_catalogue_markdown()}\n"


if __name__ == "__main__":
    print(feature_catalogue_document(), end="")
