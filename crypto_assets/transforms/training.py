"""Labels, chronological splits and the training set (features.md "Labels" and "Splits").

Pure: pandas in, pandas out; no Dagster, no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crypto_assets.transforms.features import FEATURE_NAMES, PROVENANCE_CATALOGUE, PROVENANCE_COLUMNS
from crypto_assets.transforms.indicators import normalize_ts, prepare_prices

LABEL_COLUMNS: tuple[str, ...] = ("target_log_return_1h", "target_up_1h")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
TRAINING_COLUMNS: tuple[str, ...] = ("symbol", "ts", *FEATURE_NAMES, *PROVENANCE_COLUMNS, *LABEL_COLUMNS, "split")
PURGE_BARS = 24
_ONE_HOUR = pd.Timedelta(hours=1)


def add_labels(features: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """``features`` plus ``target_log_return_1h`` and ``target_up_1h``, sorted by (symbol, ts).

    ``target_log_return_1h = ln(close_{t+1} / close_t)`` where ``t+1`` is the symbol's bar at exactly
    ``ts + 1h``: after a gap (or on the last bar) there is no next bar and the label is null, since the
    next available bar's return would span more than one hour. ``target_up_1h = target > 0`` as a
    nullable boolean (null where the target is null).
    """
    p = prepare_prices(prices)[["symbol", "ts", "close"]]
    out = features.copy()
    out["symbol"] = out["symbol"].astype(str)
    out["ts"] = normalize_ts(out["ts"])
    out = out.drop(columns=[c for c in LABEL_COLUMNS if c in out.columns])
    now = p.rename(columns={"close": "_close_t"})
    nxt = p.assign(ts=p["ts"] - _ONE_HOUR).rename(columns={"close": "_close_next"})
    out = out.merge(now, on=["symbol", "ts"], how="left").merge(nxt, on=["symbol", "ts"], how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.log(out["_close_next"].to_numpy() / out["_close_t"].to_numpy())
    target[~np.isfinite(target)] = np.nan
    out["target_log_return_1h"] = target
    up = pd.array(target > 0, dtype="boolean")
    up[np.isnan(target)] = pd.NA
    out["target_up_1h"] = up
    out = out.drop(columns=["_close_t", "_close_next"])
    return out.sort_values(["symbol", "ts"], kind="mergesort", ignore_index=True)


def assign_splits(
    frame: pd.DataFrame,
    train: float = 0.70,
    valid: float = 0.15,
    purge_bars: int = PURGE_BARS,
) -> pd.DataFrame:
    """``frame`` plus ``split`` (train/valid/test) by time, purged rows dropped, sorted by (symbol, ts).

    The distinct ``ts`` values are ordered; the first ``round(train*n)`` are train, up to
    ``round((train+valid)*n)`` valid, the rest test. The first ``purge_bars`` distinct ``ts`` after each
    boundary are dropped, so no 24-bar window (and no 1-bar-ahead label) straddles two splits. All
    symbols share the boundaries: a timestamp belongs to one split for every symbol.
    """
    if not (0 < train < 1 and 0 < valid < 1 and train + valid < 1):
        raise ValueError(f"split fractions must be in (0, 1) and sum below 1, got train={train}, valid={valid}")
    out = frame.copy()
    out["ts"] = normalize_ts(out["ts"])
    ts_ns = out["ts"].array.asi8  # int64 ns: numpy-fast, no boxed Timestamps
    distinct = np.unique(ts_ns)
    n = len(distinct)
    b1 = round(train * n)
    b2 = round((train + valid) * n)
    label = np.empty(n, dtype=object)
    label[:b1] = "train"
    label[b1:b2] = "valid"
    label[b2:] = "test"
    keep = np.ones(n, dtype=bool)
    keep[b1 : b1 + purge_bars] = False
    keep[b2 : b2 + purge_bars] = False
    idx = np.searchsorted(distinct, ts_ns)
    out["split"] = label[idx]
    out = out[keep[idx]]
    return out.sort_values(["symbol", "ts"], kind="mergesort", ignore_index=True)


def build_training_set(
    features: pd.DataFrame,
    prices: pd.DataFrame,
    train: float = 0.70,
    valid: float = 0.15,
    purge_bars: int = PURGE_BARS,
) -> pd.DataFrame:
    """Labelled, split rows whose 16 features and 2 labels are all non-null: :data:`TRAINING_COLUMNS`.

    ``features`` is ``features.feature_vectors``: the 16 features and the provenance columns
    (``gap_hours_24h``, ``venues_24h``, ``news_coverage_24h``), which are carried over unchanged.
    Incomplete rows are dropped first (warm-up bars, gaps, the last bar, bars without sentiment or news
    coverage), then the splits are assigned over the remaining distinct ``ts``, so the proportions hold for
    usable rows.
    """
    missing = [c for c in PROVENANCE_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"features frame lacks the provenance columns {missing} (build_feature_vectors makes them)")
    labelled = add_labels(features[["symbol", "ts", *FEATURE_NAMES, *PROVENANCE_COLUMNS]], prices)
    complete = labelled.dropna(subset=[*FEATURE_NAMES, *PROVENANCE_COLUMNS, *LABEL_COLUMNS])
    complete = complete[np.isfinite(complete[list(FEATURE_NAMES)].to_numpy(dtype="float64")).all(axis=1)]
    split = assign_splits(complete, train=train, valid=valid, purge_bars=purge_bars)
    split["target_up_1h"] = split["target_up_1h"].astype(bool)
    for name in (*FEATURE_NAMES, "target_log_return_1h"):
        split[name] = split[name].astype("float64")
    for spec in PROVENANCE_CATALOGUE:
        split[spec.name] = split[spec.name].astype("int64" if spec.integer else "float64")
    return split[list(TRAINING_COLUMNS)].reset_index(drop=True)


def split_summary(training_set: pd.DataFrame) -> dict[str, Any]:
    """JSON-ready summary for asset metadata: rows, symbols, ts range and share of up-moves per split."""
    summary: dict[str, Any] = {"rows": len(training_set), "splits": {}}
    for name in SPLITS:
        part = training_set[training_set["split"] == name]
        if part.empty:
            summary["splits"][name] = {
                "rows": 0,
                "distinct_ts": 0,
                "symbols": 0,
                "start": None,
                "end": None,
                "up_share": None,
                "up_rows": 0,
                "down_rows": 0,
            }
            continue
        up = part["target_up_1h"].astype(bool)
        summary["splits"][name] = {
            "rows": len(part),
            "distinct_ts": int(part["ts"].nunique()),
            "symbols": int(part["symbol"].nunique()),
            "start": part["ts"].min().isoformat(),
            "end": part["ts"].max().isoformat(),
            "up_share": round(float(up.mean()), 6),
            "up_rows": int(up.sum()),
            "down_rows": int((~up).sum()),
        }
    return summary
