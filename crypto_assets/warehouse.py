"""The DuckDB warehouse: atomic partition writes, windowed reads and the reader-safe exports.

Dagster's stock DuckDB IO manager deletes then inserts outside one transaction and inserts by
column position; here every write is one transaction that deletes exactly the partition's rows and
inserts by column name, so a failure leaves the previous rows intact.

Readers (notebooks) never open the DuckDB file: any process holding it open, even read-only,
blocks the single writer. They read Parquet exports that the writer replaces atomically.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from crypto_assets.config import LOCK_TIMEOUT_ENV, configured_lock_timeout
from crypto_assets.errors import ConfigError
from crypto_assets.schemas import column_types, duckdb_ddl

Window = tuple[datetime, datetime]
log = logging.getLogger("crypto_assets.warehouse")


class WarehouseLocked(RuntimeError):
    """Another process held the DuckDB file for longer than we were willing to wait."""


def check_path(path: Path) -> None:
    """Refuse (ConfigError) a warehouse path that is a folder, or whose folder is missing or not writable."""
    if path.exists() and path.is_dir():
        raise ConfigError(f"warehouse path {path} is a directory: point CRYPTO_ASSETS_DUCKDB at a file")
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"warehouse folder {parent} does not exist: create it or set CRYPTO_ASSETS_DUCKDB")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"warehouse folder {parent} is not writable: fix its permissions or set CRYPTO_ASSETS_DUCKDB")


LOCK_PROGRESS_EVERY_S = 10.0
_HOLDER = re.compile(r"held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(message: str) -> str:
    """Who holds the file, from DuckDB's lock error: ``python3.11 (PID 1234), running python -m jupyter lab``."""
    found = _HOLDER.search(message)
    if found is None:
        return "another process"
    pid = found["pid"]
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    command = command if len(command) <= 80 else command[:77] + "..."
    program = Path(found["program"]).name
    return f"{program} (PID {pid})" + (f", running {command}" if command else "")


def _open_database(path: Path, *, read_only: bool, lock_timeout_s: float) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, waiting up to ``lock_timeout_s`` while another process holds the file.

    DuckDB admits one writing process, and any other process holding the file (even read-only) blocks it: the
    wait says every ``LOCK_PROGRESS_EVERY_S`` who holds it, and ends in our words, not DuckDB's.
    """
    started = time.monotonic()
    deadline = started + lock_timeout_s
    next_note = started  # the first refusal is said at once
    delay = 0.05
    holder = ""
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            locked = isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()
            if not locked:
                hint = (
                    "not a DuckDB file? move it away or set CRYPTO_ASSETS_DUCKDB"
                    if path.is_file()
                    else "check the path and its folder's permissions, or set CRYPTO_ASSETS_DUCKDB"
                )
                raise ConfigError(f"cannot open warehouse {path}: {str(exc).splitlines()[0]} ({hint})") from None
            holder = lock_holder(str(exc))
        now = time.monotonic()
        if now >= deadline:
            break
        if now >= next_note:
            log.warning(
                "waiting for the warehouse: held by %s for %.0f s (waiting up to %.0f s, %s)",
                holder,
                now - started,
                lock_timeout_s,
                LOCK_TIMEOUT_ENV,
            )
            next_note = now + LOCK_PROGRESS_EVERY_S
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 2, 1.0)
    raise WarehouseLocked(
        f"warehouse {path} is held by {holder} and stayed locked for {lock_timeout_s:.0f} s: DuckDB admits one "
        "process at a time. Close that session (notebooks read with crypto_assets.load_training_table(), which "
        "never locks the warehouse), then run the same command again"
    )


@contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, lock_timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (UTC session), waiting up to ``lock_timeout_s`` (default: ``CRYPTO_ASSETS_LOCK_TIMEOUT``)
    while another process holds it. The database is closed (and with it the file lock released) when the block
    ends."""
    lock_timeout_s = configured_lock_timeout() if lock_timeout_s is None else lock_timeout_s
    path = Path(path)
    if not read_only:
        check_path(path)
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
    """Create ``table`` if missing; a table made by an earlier version gets the columns it lacks (nullable: the
    rows already there have no value for them, and the next write of a partition fills them)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {table.split('.')[0]}")
    conn.execute(duckdb_ddl(table))
    schema, name = table.split(".")
    present = {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [schema, name]
        ).fetchall()
    }
    for column, sql_type in column_types(table).items():
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


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


@dataclass(frozen=True)
class Write:
    """One table's partition replacement: ``frame`` replaces the rows inside ``windows`` (and ``scope``)."""

    table: str
    frame: pd.DataFrame
    time_column: str
    windows: Sequence[Window]
    scope: dict[str, Sequence[str]] | None = None


def _check_inside(write: Write) -> None:
    times = write.frame[write.time_column]
    inside = pd.Series(False, index=write.frame.index)
    for start, end in write.windows:
        inside |= (times >= start) & (times < end)
    if not inside.all():
        outside = write.frame.loc[~inside, write.time_column]
        raise ValueError(
            f"{write.table}: {len(outside)} rows lie outside the partitions being written (first {outside.iloc[0]})"
        )
    for column, values in (write.scope or {}).items():
        if not write.frame[column].isin(list(values)).all():
            raise ValueError(f"{write.table}: rows with {column} outside {list(values)} in a scoped write")


def replace_partitions(conn: duckdb.DuckDBPyConnection, writes: Sequence[Write]) -> None:
    """Apply every write in ONE transaction: each deletes exactly its partitions' rows and inserts its frame.

    Every row of a frame must fall inside its windows and scope, so a partition write can never touch rows
    of another partition. Columns are matched by name. A failure leaves every table as it was.
    """
    for write in writes:
        _check_inside(write)
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in dict.fromkeys(write.table for write in writes):
            ensure_table(conn, table)
        for write in writes:
            scope_sql, scope_params = _scope_sql(write.scope)
            for start, end in write.windows:
                conn.execute(
                    f"DELETE FROM {write.table} WHERE {write.time_column} >= ? AND {write.time_column} < ?{scope_sql}",
                    [start, end, *scope_params],
                )
            _insert(conn, write.table, write.frame)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def replace_rows(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    *,
    time_column: str,
    windows: Sequence[Window],
    scope: dict[str, Sequence[str]] | None = None,
) -> int:
    """Replace the rows of ``table`` inside ``windows`` (and ``scope``) by ``frame``, in one transaction."""
    if frame.empty and not windows:
        return 0
    replace_partitions(conn, [Write(table, frame, time_column, windows, scope)])
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
    conn.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO ? (FORMAT parquet)", [str(tmp)])
    os.replace(tmp, target)
    return target
