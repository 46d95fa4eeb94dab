"""What the end-to-end tests share: reading a run's warehouse, the bundled bars it must hold, the end of a CLI
run's output for a failing assertion, and another process holding the warehouse's file lock."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd

from crypto_assets.replay.data import load_bundled_prices

PRICE_COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]

# Holds the file read-write for argv[2] seconds, saying "held" once it does.
HOLD_SCRIPT = (
    "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
    "time.sleep(float(sys.argv[2])); c.close()"
)


def query(path: Path, sql: str) -> pd.DataFrame:
    """``sql`` on the DuckDB file at ``path``, read-only, timestamps in UTC."""
    with duckdb.connect(str(path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql).df()


def bundled_prices(
    symbols: Iterable[str] | None = None, first_day: str | None = None, last_day: str | None = None
) -> pd.DataFrame:
    """The bundled real bars of ``symbols`` (all when None) over the UTC days [first_day, last_day] (inclusive;
    every day when None), sorted by symbol and ts, in raw.prices' columns as ``stored_prices`` reads them."""
    frame = load_bundled_prices()
    if symbols is not None:
        frame = frame[frame["symbol"].isin(list(symbols))]
    if first_day is not None:
        frame = frame[frame["ts"] >= pd.Timestamp(first_day, tz="UTC")]
    if last_day is not None:
        frame = frame[frame["ts"] < pd.Timestamp(last_day, tz="UTC") + pd.Timedelta(days=1)]
    frame = frame.sort_values(["symbol", "ts"]).reset_index(drop=True)[PRICE_COLUMNS]
    frame["ts"] = frame["ts"].dt.as_unit("ns")
    return frame


def stored_prices(path: Path, symbol: str | None = None) -> pd.DataFrame:
    """raw.prices (of ``symbol`` only, when given), ordered by symbol and ts, with UTC nanosecond timestamps."""
    where = "" if symbol is None else f" WHERE symbol = '{symbol}'"
    frame = query(path, f"SELECT * FROM raw.prices{where} ORDER BY symbol, ts")
    frame["ts"] = frame["ts"].dt.tz_convert("UTC").dt.as_unit("ns")
    return frame


def tail(done: subprocess.CompletedProcess[str]) -> str:
    """The exit code and the end of a CLI run's stdout and stderr: the message of a failing assertion."""
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-5000:]}\n--- stderr\n{done.stderr[-4000:]}"


def hold_file(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the DuckDB file at ``path`` read-write for ``seconds``; returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder
