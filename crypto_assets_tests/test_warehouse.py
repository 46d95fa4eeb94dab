"""The warehouse writer against real DuckDB files: atomic partition replacement, insert by name, scoping."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from crypto_assets import warehouse as wh
from crypto_assets.errors import ConfigError
from crypto_assets_tests.e2e_util import hold_file

DAY1 = (datetime(2022, 5, 4, tzinfo=UTC), datetime(2022, 5, 5, tzinfo=UTC))
DAY2 = (datetime(2022, 5, 5, tzinfo=UTC), datetime(2022, 5, 6, tzinfo=UTC))


def bars(symbol: str, start: str, hours: int, close: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": ts,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 10.0,
            "provider": "binance",
            "ingested_at": pd.Timestamp("2026-01-01", tz="UTC"),
        }
    )


def rows(path, sql="SELECT symbol, ts, close FROM raw.prices ORDER BY ALL"):
    with wh.connect(path, read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_rerun_of_a_partition_leaves_identical_rows(tmp_path):
    path = tmp_path / "w.duckdb"
    frame = pd.concat([bars("BTC", "2022-05-04", 24), bars("ETH", "2022-05-04", 24)])
    with wh.connect(path) as conn:
        for _ in range(3):
            wh.replace_rows(conn, "raw.prices", frame, time_column="ts", windows=[DAY1])
    assert len(rows(path)) == 48


def test_replace_touches_only_its_window_and_scope(tmp_path):
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as conn:
        both_days = pd.concat([bars("BTC", "2022-05-04", 48, 100.0), bars("ETH", "2022-05-04", 48, 50.0)])
        wh.replace_rows(conn, "raw.prices", both_days, time_column="ts", windows=[DAY1, DAY2])
        wh.replace_rows(
            conn,
            "raw.prices",
            bars("BTC", "2022-05-05", 24, 200.0),
            time_column="ts",
            windows=[DAY2],
            scope={"symbol": ["BTC"]},
        )
    closes = dict(
        ((s, str(d)), c) for s, d, c in rows(path, "SELECT symbol, ts::DATE, max(close) FROM raw.prices GROUP BY ALL")
    )
    assert closes == {
        ("BTC", "2022-05-04"): 100.0,
        ("BTC", "2022-05-05"): 200.0,
        ("ETH", "2022-05-04"): 50.0,
        ("ETH", "2022-05-05"): 50.0,
    }


def test_failed_write_leaves_the_previous_rows(tmp_path):
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as conn:
        wh.replace_rows(conn, "raw.prices", bars("BTC", "2022-05-04", 24), time_column="ts", windows=[DAY1])
    before = rows(path)
    duplicated = pd.concat([bars("BTC", "2022-05-04", 24, 300.0), bars("BTC", "2022-05-04", 1, 300.0)])
    with wh.connect(path) as conn, pytest.raises(Exception, match=r"(?i)constraint|duplicate"):
        wh.replace_rows(conn, "raw.prices", duplicated, time_column="ts", windows=[DAY1])
    assert rows(path) == before


def test_columns_are_matched_by_name_not_position(tmp_path):
    path = tmp_path / "w.duckdb"
    frame = bars("BTC", "2022-05-04", 24)
    shuffled = frame[list(reversed(frame.columns))]
    with wh.connect(path) as conn:
        wh.replace_rows(conn, "raw.prices", shuffled, time_column="ts", windows=[DAY1])
        got = conn.execute("SELECT open, high, low, volume, provider FROM raw.prices LIMIT 1").fetchone()
    assert got == (100.0, 101.0, 99.0, 10.0, "binance")


def test_rows_outside_the_partition_are_refused(tmp_path):
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as conn, pytest.raises(ValueError, match="outside the partitions"):
        wh.replace_rows(conn, "raw.prices", bars("BTC", "2022-05-04", 30), time_column="ts", windows=[DAY1])


def test_unknown_column_fails_without_writing(tmp_path):
    path = tmp_path / "w.duckdb"
    frame = bars("BTC", "2022-05-04", 24).assign(surprise=1)
    with wh.connect(path) as conn:
        with pytest.raises(Exception, match="surprise"):
            wh.replace_rows(conn, "raw.prices", frame, time_column="ts", windows=[DAY1])
        assert wh.read_window(conn, "raw.prices", time_column="ts").empty


def test_corrupt_or_missing_locations_are_config_errors(tmp_path):
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(ConfigError, match="DuckDB file"), wh.connect(corrupt):
        pass
    with pytest.raises(ConfigError, match="does not exist"), wh.connect(tmp_path / "missing" / "w.duckdb"):
        pass


@pytest.mark.parametrize("folder", ["plain", "it's quoted", "with space; and 'two' quotes"])
def test_parquet_export_is_replaced_atomically(tmp_path, folder):
    (tmp_path / folder).mkdir()
    tmp_path = tmp_path / folder
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as conn:
        wh.replace_rows(conn, "raw.prices", bars("BTC", "2022-05-04", 24), time_column="ts", windows=[DAY1])
        target = wh.export_parquet(conn, "raw.prices", path)
    assert target == tmp_path / "exports" / "raw.prices.parquet"
    assert len(pd.read_parquet(target)) == 24
    assert not list(target.parent.glob(".*tmp"))


# --- a connection holds the file only while its block runs ----------------------------------------------------------

OTHER_PROCESS_OPENS = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"


def other_process_can_open(path) -> bool:
    """Whether a separate process can open the file read-write right now (DuckDB's file lock is per process)."""
    result = subprocess.run([sys.executable, "-c", OTHER_PROCESS_OPENS, str(path)], capture_output=True, text=True)
    if result.returncode and "lock" not in result.stderr.lower():
        raise AssertionError(result.stderr)
    return result.returncode == 0


def test_the_file_lock_is_released_when_the_block_ends(tmp_path):
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as conn:
        wh.replace_rows(conn, "raw.prices", bars("BTC", "2022-05-04", 24), time_column="ts", windows=[DAY1])
        assert not other_process_can_open(path)  # DuckDB admits one process per file
    assert other_process_can_open(path)
    assert len(rows(path)) == 24  # read-only right after the writer: nothing of it is left open


def test_nested_connections_share_the_database_and_are_utc(tmp_path):
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as first, wh.connect(path) as second:  # e.g. two threads of one step
        wh.replace_rows(first, "raw.prices", bars("BTC", "2022-05-04", 24), time_column="ts", windows=[DAY1])
        assert second.execute("SELECT count(*) FROM raw.prices").fetchone() == (24,)
        assert second.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    assert other_process_can_open(path)


def test_a_connection_waits_for_another_process_then_gives_up_clearly(tmp_path):
    path = tmp_path / "w.duckdb"
    with wh.connect(path):
        pass

    holder = hold_file(path, 1.0)
    started = time.monotonic()
    with wh.connect(path, lock_timeout_s=30) as conn:  # waits for the other process to let go
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert time.monotonic() - started > 0.3
    holder.wait(timeout=30)

    holder = hold_file(path, 10.0)
    try:
        with (
            pytest.raises(
                wh.WarehouseLocked,
                match=r"is held by .*\(PID \d+\).* and stayed locked for 0 s.*load_training_table\(\)",
            ),
            wh.connect(path, lock_timeout_s=0.5),
        ):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_table_of_an_earlier_version_gets_its_new_columns(tmp_path):
    """A warehouse built before the provenance columns existed is written to, not refused: the missing columns
    are added (nullable), the old rows kept, and a rewritten partition carries the new values."""
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as conn:
        conn.execute("CREATE SCHEMA features")
        conn.execute(
            "CREATE TABLE features.sentiment_hourly (symbol VARCHAR, ts TIMESTAMPTZ, PRIMARY KEY (symbol, ts))"
        )
        conn.execute("INSERT INTO features.sentiment_hourly VALUES ('BTC', TIMESTAMPTZ '2022-05-03 00:00:00+00')")
        wh.ensure_table(conn, "features.sentiment_hourly")
        columns = [r[0] for r in conn.execute("DESCRIBE features.sentiment_hourly").fetchall()]
        kept = conn.execute("SELECT count(*) FROM features.sentiment_hourly").fetchone()[0]
    assert "news_coverage_24h" in columns and "sentiment_mean_24h" in columns and kept == 1


def test_a_warehouse_with_bigint_counts_keeps_working(tmp_path):
    """Counts the contract types INTEGER were BIGINT in warehouses built before: such a table is written to and
    read back as before, and what it holds validates (INTEGER or BIGINT, the frames hold int64)."""
    from crypto_assets.schemas import duckdb_ddl, validate_frame

    path = tmp_path / "w.duckdb"
    coverage = pd.DataFrame(
        {
            "symbol": ["BTC", "ETH"],
            "day": [DAY1[0].date()] * 2,
            "status": ["complete", "partial"],
            "bars": [24, 20],
            "provider": ["binance", "okx"],
            "detail": ["binance: 24 bars", "binance: failed; okx: 20 bars"],
        }
    )
    with wh.connect(path) as conn:
        conn.execute("CREATE SCHEMA raw")
        conn.execute(duckdb_ddl("raw.price_coverage").replace("INTEGER", "BIGINT"))
        wh.replace_rows(
            conn, "raw.price_coverage", coverage, time_column="day", windows=[(DAY1[0].date(), DAY2[0].date())]
        )
        assert conn.execute("SELECT DISTINCT typeof(bars) FROM raw.price_coverage").fetchall() == [("BIGINT",)]
        back = validate_frame("raw.price_coverage", wh.read_window(conn, "raw.price_coverage", time_column="day"))
    assert back["bars"].dtype == "int64" and back["bars"].tolist() == [24, 20]
