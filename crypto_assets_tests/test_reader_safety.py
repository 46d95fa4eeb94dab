"""Readers (notebooks) and the pipeline writing the warehouse at the same time, and load_training_table's arguments.

The slow test is end to end with nothing mocked: real reader processes loop over ``load_training_table()``
(or keep its DataFrame) while a real ``crypto-assets bootstrap`` re-materializes the same window.
The unit tests write small synthetic tables through the real warehouse code (DuckDB, then Parquet export).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_assets import load_training_table, loading
from crypto_assets import warehouse as wh
from crypto_assets.errors import ConfigError
from crypto_assets.loading import load_prices, prices_path, training_table_path
from crypto_assets.transforms.features import FEATURE_NAMES
from crypto_assets.transforms.training import TRAINING_COLUMNS

WINDOW = ("2022-05-04", "2022-05-20")

# A reader process. "loop": load the whole table again and again until the stop file appears; "hold": load it
# once, keep the DataFrame while the pipeline runs, then check it is unchanged. Prints one JSON summary line.
READER = r"""
import hashlib, json, os, sys, time, traceback
import pandas as pd
from crypto_assets import load_training_table
from crypto_assets.loading import training_table_path

mode, stop = sys.argv[1], sys.argv[2]
path = training_table_path()

def digest(frame):
    rows = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    return [len(frame), list(frame.columns), rows]

reads, errors, seen, inodes = 0, [], {}, set()
def read():
    global reads
    try:
        inode = os.stat(path).st_ino
        frame = load_training_table()
        key = json.dumps(digest(frame))
        seen[key] = seen.get(key, 0) + 1
        inodes.add(inode)
        reads += 1
        return frame
    except Exception:
        errors.append(traceback.format_exc()[-2000:])

frame = read()
print("ready", flush=True)
if mode == "loop":
    while not os.path.exists(stop):
        read()
        time.sleep(0.02)
else:
    while not os.path.exists(stop):
        time.sleep(0.1)
    if frame is not None and json.dumps(digest(frame)) not in seen:
        errors.append("the DataFrame kept in memory changed")
print(json.dumps({"reads": reads, "errors": errors[:5], "snapshots": seen, "inodes": sorted(inodes)}), flush=True)
"""


def _digest(frame: pd.DataFrame) -> str:
    """Same digest as the reader processes compute (row count, columns, content hash)."""
    rows = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    return json.dumps([len(frame), list(frame.columns), rows])


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
    if line.strip() != "ready":
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"reader did not start: {line}{out}\n{err}")


@pytest.mark.slow
def test_readers_and_a_bootstrap_run_at_the_same_time(pipeline_env, tmp_path: Path) -> None:
    first = pipeline_env.run("bootstrap", "--start", WINDOW[0], "--end", WINDOW[1])
    assert first.returncode == 0, _tail(first)
    export = training_table_path(pipeline_env.duckdb_path)
    before = _digest(load_training_table(duckdb_path=pipeline_env.duckdb_path))
    inode_before = export.stat().st_ino

    stop = tmp_path / "stop-readers"
    readers = {
        mode: subprocess.Popen(
            [sys.executable, "-c", READER, mode, str(stop)],
            env=pipeline_env.env,  # CRYPTO_ASSETS_DUCKDB: the readers call load_training_table() without arguments
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("loop", "hold")
    }
    finished: dict[str, tuple[int, str, str]] = {}
    try:
        for proc in readers.values():
            _wait_ready(proc)
        second = pipeline_env.run("bootstrap", "--start", WINDOW[0], "--end", WINDOW[1])
    finally:
        stop.touch()
        for mode, proc in readers.items():
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            finished[mode] = (proc.returncode, out, err)
    results = {}
    for mode, (code, out, err) in finished.items():
        assert code == 0, f"{mode} reader crashed:\n{err[-3000:]}"
        results[mode] = json.loads(out.strip().splitlines()[-1])

    # The writer was never blocked by the readers, and it did replace the export while they read.
    assert second.returncode == 0, _tail(second)
    assert "SUCCESS" in second.stdout
    after = _digest(load_training_table(duckdb_path=pipeline_env.duckdb_path))
    inode_after = export.stat().st_ino
    assert inode_after != inode_before
    consistent = {before, after}
    assert json.loads(after)[0] > 1000

    loop = results["loop"]
    assert loop["errors"] == []
    assert loop["reads"] >= 20
    assert set(loop["snapshots"]) <= consistent, "a read returned something other than a complete export"
    assert sum(loop["snapshots"].values()) == loop["reads"]
    assert {inode_before, inode_after} <= set(loop["inodes"]), "the looping reader should span the replacement"

    hold = results["hold"]
    assert hold["errors"] == []
    assert hold["reads"] == 1
    assert set(hold["snapshots"]) == {before}


# --- load_training_table / load_prices on a small synthetic warehouse ---

T0 = pd.Timestamp("2022-05-04", tz="UTC")
SYMBOLS = ("BTC", "ETH", "SOL")
HOURS = 48
# Chronological splits with purged gaps between them, as the real table has.
SPLIT_HOURS = {"train": range(0, 30), "valid": range(33, 39), "test": range(42, 48)}


def synthetic_training_set(seed: int = 0, symbols: tuple[str, ...] = SYMBOLS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for split, hours in SPLIT_HOURS.items():
        for hour in hours:
            for symbol in symbols:
                rows.append({"symbol": symbol, "ts": T0 + pd.Timedelta(hours=hour), "split": split})
    frame = pd.DataFrame(rows)
    for name in FEATURE_NAMES:
        frame[name] = rng.normal(size=len(frame))
    frame["gap_hours_24h"] = np.int64(0)
    frame["venues_24h"] = np.int64(1)
    frame["news_coverage_24h"] = rng.integers(1, 25, size=len(frame)) / 24
    frame["target_log_return_1h"] = rng.normal(scale=0.01, size=len(frame))
    frame["target_up_1h"] = frame["target_log_return_1h"] > 0
    frame["ts"] = frame["ts"].dt.as_unit("ns")
    return frame[list(TRAINING_COLUMNS)]


def synthetic_prices(symbols: tuple[str, ...] = SYMBOLS) -> pd.DataFrame:
    ts = T0 + pd.to_timedelta(np.arange(HOURS), unit="h")
    frames = []
    for i, symbol in enumerate(symbols):
        close = 100.0 * (i + 1) + np.arange(HOURS)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "open": close,
                    "high": close + 1,
                    "low": close - 1,
                    "close": close,
                    "volume": 10.0,
                    "provider": "binance",
                    "ingested_at": T0 + pd.Timedelta(days=3),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def write_warehouse(path: Path, training: pd.DataFrame, prices: pd.DataFrame | None = None) -> None:
    """Through the pipeline's own code: DuckDB tables, then the atomic Parquet exports."""
    with wh.connect(path) as conn:
        wh.replace_table(conn, "ml.training_set", training)
        wh.export_parquet(conn, "ml.training_set", path)
        if prices is not None:
            wh.replace_table(conn, "raw.prices", prices)
            wh.export_parquet(conn, "raw.prices", path)


@pytest.fixture
def warehouse(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    path = tmp_path / "w.duckdb"
    table = synthetic_training_set()
    write_warehouse(path, table, synthetic_prices())
    return path, table.sort_values(["ts", "symbol"], ignore_index=True)


def test_whole_table_round_trips(warehouse) -> None:
    path, table = warehouse
    got = load_training_table(duckdb_path=path)
    assert list(got.columns) == list(TRAINING_COLUMNS)
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(got, table)


def test_filters_symbols_splits_time_range_and_columns(warehouse) -> None:
    path, table = warehouse

    got = load_training_table(symbols=["ETH"], duckdb_path=path)
    pd.testing.assert_frame_equal(got, table[table["symbol"] == "ETH"].reset_index(drop=True))
    got = load_training_table(symbols="BTC,SOL", duckdb_path=path)  # a string is a comma-separated list
    assert set(got["symbol"]) == {"BTC", "SOL"} and len(got) == 2 * len(table) // 3

    got = load_training_table(splits=["valid", "test"], duckdb_path=path)
    pd.testing.assert_frame_equal(got, table[table["split"] != "train"].reset_index(drop=True))
    assert set(load_training_table(splits="test", duckdb_path=path)["split"]) == {"test"}

    # start inclusive, end exclusive; naive times are UTC, aware ones are converted.
    got = load_training_table(start="2022-05-04 10:00", end=datetime(2022, 5, 4, 20, tzinfo=UTC), duckdb_path=path)
    assert got["ts"].min() == T0 + pd.Timedelta(hours=10)
    assert got["ts"].max() == T0 + pd.Timedelta(hours=19)
    assert len(got) == 10 * len(SYMBOLS)
    same = load_training_table(start="2022-05-04 12:00+02:00", end="2022-05-04 20:00", duckdb_path=path)
    pd.testing.assert_frame_equal(same, got)

    got = load_training_table(columns=["rsi_14", "target_up_1h", "symbol"], duckdb_path=path)
    assert list(got.columns) == ["symbol", "ts", "split", "rsi_14", "target_up_1h"]
    pd.testing.assert_frame_equal(got, table[list(got.columns)])

    got = load_training_table(
        symbols=["BTC"], splits=["train"], start="2022-05-04 05:00", columns=["bb_pct_b"], duckdb_path=path
    )
    expected = table[(table["symbol"] == "BTC") & (table["split"] == "train") & (table["ts"] >= "2022-05-04 05:00Z")]
    pd.testing.assert_frame_equal(got, expected[["symbol", "ts", "split", "bb_pct_b"]].reset_index(drop=True))
    assert len(got) == 25


def test_bad_arguments_say_what_is_wrong(warehouse, tmp_path: Path) -> None:
    path, _ = warehouse
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['training'\]: choose from train, valid, test"):
        load_training_table(splits=["train", "training"], duckdb_path=path)
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['rsi_15'\].*available: symbol, ts, rsi_14"):
        load_training_table(columns=["rsi_15"], duckdb_path=path)
    with pytest.raises(ValueError, match=r"symbol\(s\) \['DOGE'\] not in the training table; it has BTC, ETH, SOL"):
        load_training_table(symbols=["BTC", "DOGE"], duckdb_path=path)
    with pytest.raises(ConfigError, match="must be upper case"):
        load_training_table(symbols="btc", duckdb_path=path)
    with pytest.raises(ValueError, match="is not before end"):
        load_training_table(start="2022-05-05", end="2022-05-04", duckdb_path=path)
    with pytest.raises(ValueError, match="start='yesterday-ish' is not a date or time"):
        load_training_table(start="yesterday-ish", duckdb_path=path)
    # pandas would read a number as nanoseconds since 1970 and return everything: refused instead
    for number in (20221201, 1.6e9, True):
        with pytest.raises(TypeError, match=f"start={number!r} is not a date or time.*not {type(number).__name__}"):
            load_training_table(start=number, duckdb_path=path)
    assert len(load_training_table(start=dt.date(2022, 5, 5), duckdb_path=path)) > 0
    missing = tmp_path / "elsewhere" / "crypto.duckdb"
    with pytest.raises(FileNotFoundError, match=r"no training table at .*elsewhere.*crypto-assets demo"):
        load_training_table(duckdb_path=missing)
    with pytest.raises(FileNotFoundError, match=r"no price export at .*elsewhere"):
        load_prices(duckdb_path=missing)


def test_the_warehouse_comes_from_crypto_assets_duckdb(warehouse, tmp_path: Path, monkeypatch) -> None:
    path, table = warehouse
    monkeypatch.setenv("CRYPTO_ASSETS_DUCKDB", str(path))
    assert training_table_path() == path.parent / "exports" / "ml.training_set.parquet"
    pd.testing.assert_frame_equal(load_training_table(), table)
    monkeypatch.setenv("CRYPTO_ASSETS_DUCKDB", str(tmp_path / "empty" / "crypto.duckdb"))
    with pytest.raises(FileNotFoundError, match="empty"):
        load_training_table()


def test_load_prices_filters(warehouse) -> None:
    path, _ = warehouse
    prices = synthetic_prices()
    got = load_prices(duckdb_path=path)
    assert prices_path(path).exists()
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert len(got) == len(prices)
    assert list(got[["symbol", "ts"]].itertuples(index=False)) == sorted(
        prices[["symbol", "ts"]].itertuples(index=False)
    )
    got = load_prices(symbols=["SOL"], start="2022-05-05", columns=["close"], duckdb_path=path)
    assert list(got.columns) == ["symbol", "ts", "close"]
    assert len(got) == HOURS - 24
    assert got["close"].tolist() == (300.0 + np.arange(24, HOURS)).tolist()
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['split'\] in the price export"):
        load_prices(columns=["split"], duckdb_path=path)


def test_a_read_sees_the_export_it_opened_even_if_it_is_replaced_meanwhile(warehouse, tmp_path, monkeypatch) -> None:
    """The writer renames a new export over the old one right after the reader opened it (as the pipeline does
    with ``os.replace``): the read must return the old version whole, not mix in the new file."""
    path, old = warehouse
    newer_path = tmp_path / "newer" / "w.duckdb"
    newer_path.parent.mkdir()
    write_warehouse(newer_path, synthetic_training_set(seed=1, symbols=("BTC", "ETH")))
    target = training_table_path(path)
    opened = loading._open_export

    @contextmanager
    def open_then_replace(export: Path, what: str) -> Iterator[object]:
        with opened(export, what) as source:
            os.replace(training_table_path(newer_path), target)
            yield source

    monkeypatch.setattr(loading, "_open_export", open_then_replace)
    got = load_training_table(symbols=["SOL", "BTC"], duckdb_path=path)
    pd.testing.assert_frame_equal(got, old[old["symbol"].isin(["SOL", "BTC"])].reset_index(drop=True))
    monkeypatch.setattr(loading, "_open_export", opened)
    assert set(load_training_table(duckdb_path=path)["symbol"]) == {"BTC", "ETH"}  # the new version, next time
