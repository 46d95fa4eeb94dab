"""Reading the warehouse from notebooks without ever blocking a pipeline run.

DuckDB admits one writing process, and any other process holding the file open (even read-only)
blocks it. So readers never open the warehouse: they read the Parquet exports that the
`ml/training_set` asset replaces atomically (write to a temp file, then rename) after each build:
`exports/ml.training_set.parquet` and `exports/raw.prices.parquet`, beside the DuckDB file.

Each read maps the export once and takes the schema, the symbols and the rows from that one mapping,
so a rename by the writer in the middle of a read cannot mix two versions: the reader gets the file as
it was when it opened it (the old inode stays readable until it is unmapped). A reader that keeps its
DataFrame or its session holds no lock on anything the pipeline writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crypto_assets.config import load_settings
from crypto_assets.symbols import parse_symbols, validate_symbol
from crypto_assets.transforms.training import SPLITS
from crypto_assets.warehouse import exports_dir

_BUILD_HINT = "build it with `crypto-assets demo` (offline) or `crypto-assets bootstrap`"

Filter = tuple[str, str, object]


def _exports(duckdb_path: str | Path | None) -> Path:
    path = Path(duckdb_path) if duckdb_path is not None else load_settings().duckdb_path
    return exports_dir(path)


def training_table_path(duckdb_path: str | Path | None = None) -> Path:
    """The training set's Parquet export (for the warehouse at ``duckdb_path``, default ``CRYPTO_ASSETS_DUCKDB``)."""
    return _exports(duckdb_path) / "ml.training_set.parquet"


def prices_path(duckdb_path: str | Path | None = None) -> Path:
    """The hourly bars' Parquet export (``raw.prices``), written with the training set."""
    return _exports(duckdb_path) / "raw.prices.parquet"


@contextmanager
def _open_export(path: Path, what: str) -> Iterator[pa.NativeFile]:
    try:
        source = pa.memory_map(str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}: {_BUILD_HINT}") from None
    try:
        yield source
    finally:
        source.close()


def _utc(name: str, value: str | date | datetime | pd.Timestamp) -> pd.Timestamp:
    problem = f"{name}={value!r} is not a date or time: use e.g. '2022-06-01' or '2022-06-01 12:00' (UTC)"
    # pandas reads a number as nanoseconds since 1970 (20221201 -> 1970-01-01 00:00:00.020221201): refuse it.
    if not isinstance(value, str | date):  # datetime and pandas.Timestamp are dates too
        raise TypeError(
            f"{problem}, a str, datetime.date, datetime.datetime or pandas.Timestamp; not {type(value).__name__}"
        )
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(problem) from exc
    if stamp is pd.NaT:
        raise ValueError(problem)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _names(argument: str, values: str | Sequence[str]) -> list[str]:
    # A bare string is one name (or a comma-separated list), never a sequence of characters.
    if isinstance(values, str):
        return list(parse_symbols(values, source=argument)) if argument == "symbols" else [values]
    return list(values)


def _read_export(
    path: Path,
    what: str,
    *,
    key_columns: Sequence[str],
    symbols: str | Sequence[str] | None,
    start: str | datetime | None,
    end: str | datetime | None,
    columns: Sequence[str] | None,
    extra_filters: Sequence[Filter] = (),
) -> pd.DataFrame:
    filters: list[Filter] = list(extra_filters)
    wanted_symbols: list[str] | None = None
    if symbols is not None:
        wanted_symbols = [validate_symbol(s) for s in _names("symbols", symbols)]
        filters.append(("symbol", "in", wanted_symbols))
    lower = _utc("start", start) if start is not None else None
    upper = _utc("end", end) if end is not None else None
    if lower is not None and upper is not None and lower >= upper:
        raise ValueError(f"start {lower} is not before end {upper}: the range is start <= ts < end")
    if lower is not None:
        filters.append(("ts", ">=", lower))
    if upper is not None:
        filters.append(("ts", "<", upper))
    with _open_export(path, what) as source:
        available = pq.read_schema(source).names
        if columns is not None:
            columns = _names("columns", columns)
            missing = [c for c in columns if c not in available]
            if missing:
                raise ValueError(f"unknown column(s) {missing} in the {what}; available: {', '.join(available)}")
            wanted = [*key_columns, *[c for c in columns if c not in key_columns]]
        else:
            wanted = available
        if wanted_symbols is not None:
            present = set(pq.read_table(source, columns=["symbol"]).column("symbol").unique().to_pylist())
            absent = [s for s in wanted_symbols if s not in present]
            if absent:
                raise ValueError(f"symbol(s) {absent} not in the {what}; it has {', '.join(sorted(present))}")
        table = pq.read_table(source, columns=wanted, filters=filters or None)
    frame = table.to_pandas()
    if "ts" in frame.columns:
        frame["ts"] = frame["ts"].dt.as_unit("ns")
    # INTEGER columns (gap_hours_24h, venues_24h) arrive as int32: int64, as in the pipeline's frames.
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, np.dtype) and dtype.kind == "i" and dtype != np.int64:
            frame[name] = frame[name].astype(np.int64)
    return frame


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
    Rows are sorted by (ts, symbol); ``ts`` is ``datetime64[ns, UTC]``, integer columns int64. Safe while a
    pipeline run writes the warehouse (it reads the atomically replaced Parquet export of ``duckdb_path`` or
    ``CRYPTO_ASSETS_DUCKDB``). Unknown splits, columns or symbols raise ValueError; a missing export
    raises FileNotFoundError.
    """
    split_filter: list[Filter] = []
    if splits is not None:
        names = _names("splits", splits)
        unknown = sorted(set(names) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}: choose from {', '.join(SPLITS)}")
        split_filter.append(("split", "in", names))
    frame = _read_export(
        training_table_path(duckdb_path),
        "training table",
        key_columns=("symbol", "ts", "split"),
        symbols=symbols,
        start=start,
        end=end,
        columns=columns,
        extra_filters=split_filter,
    )
    return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def load_prices(
    symbols: Sequence[str] | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    columns: Sequence[str] | None = None,
    *,
    duckdb_path: str | Path | None = None,
) -> pd.DataFrame:
    """The hourly bars (``raw.prices``) as a DataFrame, filtered like :func:`load_training_table`.

    ``columns`` picks among open/high/low/close/volume/provider/...; ``symbol`` and ``ts`` are always
    included. Sorted by (symbol, ts). Reads the Parquet export written with the training set, so it is
    as safe during a pipeline run and shows the bars the current training table was built from.
    """
    frame = _read_export(
        prices_path(duckdb_path),
        "price export",
        key_columns=("symbol", "ts"),
        symbols=symbols,
        start=start,
        end=end,
        columns=columns,
    )
    return frame.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
