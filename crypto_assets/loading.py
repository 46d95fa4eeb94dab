"""Reading the training table from notebooks without ever blocking a pipeline run.

DuckDB admits one writing process, and any other process holding the file open (even read-only)
blocks it. So readers never open the warehouse: they read the Parquet export that the
`ml/training_set` asset replaces atomically (write to a temp file, then rename) after each build.
A reader that keeps its DataFrame or its session holds no lock on anything the pipeline writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from crypto_assets.config import load_settings
from crypto_assets.warehouse import exports_dir

SPLITS = ("train", "valid", "test")


def training_table_path(duckdb_path: str | Path | None = None) -> Path:
    path = Path(duckdb_path) if duckdb_path is not None else load_settings().duckdb_path
    return exports_dir(path) / "ml.training_set.parquet"


def _utc(value: str | datetime | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def load_training_table(
    symbols: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    columns: Sequence[str] | None = None,
    *,
    duckdb_path: str | Path | None = None,
) -> pd.DataFrame:
    """The training set as a DataFrame, filtered by symbols, splits and ``start <= ts < end`` (UTC).

    ``columns`` picks feature/label columns; ``symbol``, ``ts`` and ``split`` are always included.
    Safe while a pipeline run writes the warehouse (it reads the atomically replaced Parquet export).
    """
    path = training_table_path(duckdb_path)
    if not path.exists():
        raise FileNotFoundError(
            f"no training table at {path}: build it with `make demo` (offline) or `crypto-assets bootstrap`"
        )
    if splits is not None:
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}: choose from {', '.join(SPLITS)}")
    available = pq.read_schema(path).names
    if columns is not None:
        missing = [c for c in columns if c not in available]
        if missing:
            raise ValueError(f"unknown column(s) {missing}; available: {', '.join(available)}")
        wanted = ["symbol", "ts", "split", *[c for c in columns if c not in ("symbol", "ts", "split")]]
    else:
        wanted = available
    filters: list[tuple[str, str, object]] = []
    if symbols is not None:
        filters.append(("symbol", "in", list(symbols)))
    if splits is not None:
        filters.append(("split", "in", list(splits)))
    if start is not None:
        filters.append(("ts", ">=", _utc(start)))
    if end is not None:
        filters.append(("ts", "<", _utc(end)))
    frame = pd.read_parquet(path, columns=wanted, filters=filters or None)
    return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
