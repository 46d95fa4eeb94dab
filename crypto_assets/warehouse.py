"""The DuckDB warehouse: atomic partition writes, windowed reads and the reader-safe exports.

Dagster's stock DuckDB IO manager deletes then inserts outside one transaction and inserts by
column position; here every write is one transaction that deletes exactly the partition's rows and
inserts by column name, so a failure leaves the previous rows intact.

Readers (notebooks) never open the DuckDB file: any process holding it open, even read-only,
blocks the single writer. They read Parquet exports that the writer replaces atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from crypto_assets.errors import ConfigError
from crypto_assets.schemas import duckdb_ddl

Window = tuple[datetime, datetime]


class WarehouseLocked(RuntimeError):
    """Another process held the DuckDB file for longer than we were willing to wait."""


def _check_path(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise ConfigError(f"warehouse path {path} is a directory: point CRYPTO_ASSETS_DUCKDB at a file")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"warehouse folder {parent} does not exist: create it or set CRYPTO_ASSETS_DUCKDB")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"warehouse folder {parent} is not writable: fix its permissions or set CRYPTO_ASSETS_DUCKDB")


def _open_database(path: Path, *, read_only: bool, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, waiting up to ``lock_timeout_s`` while another process holds the file."""
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            locked = isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()
            if locked and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if locked:
                raise WarehouseLocked(
                    f"warehouse {path} stayed locked by another process for {lock_timeout_s:.0f} s: "
                    "close other DuckDB sessions on it (notebooks should use load_training_table)"
                ) from exc
            hint = (
                "not a DuckDB file? move it away or set CRYPTO_ASSETS_DUCKDB"
                if path.is_file()
                else "check the path and its folder's permissions, or set CRYPTO_ASSETS_DUCKDB"
            )
            raise ConfigError(f"cannot open warehouse {path}: {str(exc).splitlines()[0]} ({hint})") from exc


@contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, lock_timeout_s: float = 120.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (UTC session), waiting up to ``lock_timeout_s`` while another process holds it.

    The database is closed (and with it the file lock released) when the block ends.
    """
    path = Path(path)
    if not read_only:
        _check_path(path)
    conn = _open_database(path, read_only=read_only, lock_timeout_s=lock_timeout_s)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        yield conn
    finally:
        conn.close()


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    found = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, name]
    ).fetchone()
    return bool(found and found[0])


def ensure_table(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    conn.execute(duckdb_ddl(table))


def _scope_sql(scope: dict[str, Sequence[str]] | None) -> tuple[str, list[object]]:
    if not scope:
        return "", []
    clauses, params = [], []
    for column, values in scope.items():
        clauses.append(f" AND {column} IN (SELECT unnest(?))")
        params.append(list(values))
    return "".join(clauses), params


def _insert(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    conn.register("incoming_rows", frame)
    conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows")
    conn.unregister("incoming_rows")


def replace_rows(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    *,
    time_column: str,
    windows: Sequence[Window],
    scope: dict[str, Sequence[str]] | None = None,
) -> int:
    """Replace the rows of ``table`` inside ``windows`` (and ``scope``) by ``frame``, in one transaction.

    Every row of ``frame`` must fall inside a window and the scope, so a partition write can never touch
    rows of another partition. Columns are matched by name.
    """
    if frame.empty and not windows:
        return 0
    times = frame[time_column]
    inside = pd.Series(False, index=frame.index)
    for start, end in windows:
        inside |= (times >= start) & (times < end)
    if not inside.all():
        outside = frame.loc[~inside, time_column]
        raise ValueError(
            f"{table}: {len(outside)} rows lie outside the partitions being written (first {outside.iloc[0]})"
        )
    for column, values in (scope or {}).items():
        if not frame[column].isin(list(values)).all():
            raise ValueError(f"{table}: rows with {column} outside {list(values)} in a scoped write")
    scope_sql, scope_params = _scope_sql(scope)
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_table(conn, table)
        for start, end in windows:
            conn.execute(
                f"DELETE FROM {table} WHERE {time_column} >= ? AND {time_column} < ?{scope_sql}",
                [start, end, *scope_params],
            )
        _insert(conn, table, frame)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(frame)


def replace_table(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Replace every row of an unpartitioned table, in one transaction."""
    conn.execute("BEGIN TRANSACTION")
    try:
        ensure_table(conn, table)
        conn.execute(f"DELETE FROM {table}")
        _insert(conn, table, frame)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(frame)


def read_window(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    *,
    time_column: str,
    start: datetime | None = None,
    end: datetime | None = None,
    symbols: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of ``table`` with ``time_column`` in [start, end) (an empty frame if the table does not exist yet)."""
    if not table_exists(conn, table):
        ensure_table(conn, table)
    select = ", ".join(columns) if columns else "*"
    sql = f"SELECT {select} FROM {table} WHERE true"
    params: list[object] = []
    if start is not None:
        sql += f" AND {time_column} >= ?"
        params.append(start)
    if end is not None:
        sql += f" AND {time_column} < ?"
        params.append(end)
    if symbols is not None:
        sql += " AND symbol IN (SELECT unnest(?))"
        params.append(list(symbols))
    sql += f" ORDER BY {'symbol, ' if symbols is not None else ''}{time_column}"
    return conn.execute(sql, params).df()


def exports_dir(duckdb_path: str | Path) -> Path:
    """Where reader-safe Parquet exports of the warehouse live (beside the DuckDB file)."""
    return Path(duckdb_path).parent / "exports"


def export_parquet(conn: duckdb.DuckDBPyConnection, table: str, duckdb_path: str | Path) -> Path:
    """Write ``table`` to ``exports/<table>.parquet`` atomically (temp file, then rename)."""
    target = exports_dir(duckdb_path) / f"{table}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    conn.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{tmp}' (FORMAT parquet)")
    os.replace(tmp, target)
    return target
