"""Any build order ends with the tables of one full build (features.md, "order independence").

Real `crypto-assets bootstrap` runs (subprocesses, their own instance and DuckDB file) against the replay
server serving the bundled real bars and news: the window is cut into sub-windows built in a random order
(newest first, then backfilled, or shuffled), and every column of the derived tables is compared with one
build over the whole window. Floats within features.md's 1e-6 relative tolerance (the exponential
indicators' 14-day look-back), everything else exactly.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_assets import warehouse as wh
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.conftest import make_pipeline_env

pytestmark = pytest.mark.slow

FIRST, LAST = date(2022, 5, 4), date(2022, 5, 27)
SYMBOLS = "BTC,ETH,SOL"
COMPARED = {
    "raw.prices": ["symbol", "ts"],
    "features.technical_indicators": ["symbol", "ts"],
    "features.sentiment_hourly": ["symbol", "ts"],
    "features.feature_vectors": ["symbol", "ts"],
    "ml.training_set": ["symbol", "ts"],
}
VOLATILE = {"ingested_at"}  # when a row was written differs by run, by design


def build(root: Path, server: ReplayServer, windows: list[tuple[date, date]]) -> dict[str, pd.DataFrame]:
    env = make_pipeline_env(root, server)
    for first, last in windows:
        done = env.run("bootstrap", "--start", str(first), "--end", str(last), "--symbols", SYMBOLS, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with wh.connect(env.duckdb_path, read_only=True) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(key)}").df()
            for table, key in COMPARED.items()
        }


def cut(rng: random.Random, pieces: int) -> list[tuple[date, date]]:
    days = (LAST - FIRST).days + 1
    bounds = sorted(rng.sample(range(1, days), pieces - 1))
    starts = [0, *bounds]
    ends = [*bounds, days]
    return [(FIRST + timedelta(days=a), FIRST + timedelta(days=b - 1)) for a, b in zip(starts, ends, strict=True)]


def assert_same_tables(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for table, expected in want.items():
        actual = got[table]
        columns = [c for c in expected.columns if c not in VOLATILE]
        assert list(actual.columns) == list(expected.columns), table
        assert len(actual) == len(expected), f"{table}: {len(actual)} rows, one full build has {len(expected)}"
        for column in columns:
            a, e = actual[column], expected[column]
            if pd.api.types.is_float_dtype(e):
                both_null = a.isna().to_numpy() == e.isna().to_numpy()
                assert both_null.all(), f"{table}.{column}: nulls differ at {np.flatnonzero(~both_null)[:5]}"
                close = np.isclose(a.to_numpy(), e.to_numpy(), rtol=1e-6, atol=1e-12, equal_nan=True)
                assert close.all(), f"{table}.{column}: {(~close).sum()} values differ beyond 1e-6"
            else:
                pd.testing.assert_series_equal(a, e, check_names=False, obj=f"{table}.{column}")


@pytest.fixture(scope="module")
def full_build(tmp_path_factory, replay_server) -> dict[str, pd.DataFrame]:
    return build(tmp_path_factory.mktemp("full"), replay_server, [(FIRST, LAST)])


def test_newest_first_then_backfill_equals_one_full_build(tmp_path, replay_server, full_build):
    middle = FIRST + timedelta(days=12)
    got = build(tmp_path, replay_server, [(middle + timedelta(days=1), LAST), (FIRST, middle)])
    assert_same_tables(got, full_build)


@pytest.mark.parametrize("seed", [11])
def test_random_orders_of_sub_windows_equal_one_full_build(tmp_path, replay_server, full_build, seed):
    rng = random.Random(seed)
    windows = cut(rng, 3)
    rng.shuffle(windows)
    got = build(tmp_path, replay_server, windows)
    assert_same_tables(got, full_build)
