"""The market as messy as it is, end to end: listings, delistings, NaN and negative prices, gaps, a partial
day, a venue switch, contradictory answers, a warehouse path with a quote, a held lock.

Real `crypto-assets bootstrap` runs (subprocesses, their own SQLite instance and DuckDB file) against the
replay server serving the bundled real bars, made messy by its fault configuration (FaultConfig: listings,
delistings, holes, per-symbol corruptions). Each case checks the documented exit code, the rows that land
(raw.prices, raw.price_coverage, features, training set) and what the summary says.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pandas as pd
import pytest

from crypto_assets.config import REPO_ROOT
from crypto_assets.replay.faults import FaultConfig
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.conftest import PipelineEnv, make_pipeline_env
from crypto_assets_tests.e2e_util import PRICE_COLUMNS, bundled_prices, hold_file, query, stored_prices, tail

pytestmark = pytest.mark.slow

FIRST, LAST = "2022-05-10", "2022-05-13"
DAYS = ["2022-05-10", "2022-05-11", "2022-05-12", "2022-05-13"]


@pytest.fixture(scope="module")
def server():
    # FLUX is a stand-in coin: SOL's real bars served under another name (never to be read as FLUX's market).
    with ReplayServer(aliases={"FLUX": "SOL"}) as replay:
        yield replay


@pytest.fixture
def env(tmp_path, server) -> PipelineEnv:
    server.set_faults(FaultConfig())
    return make_pipeline_env(tmp_path, server)


def bootstrap(env: PipelineEnv, symbols: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return env.run("bootstrap", "--start", FIRST, "--end", LAST, "--symbols", symbols, *args, **extra)


def coverage(env: PipelineEnv) -> dict[tuple[str, str], tuple[str, int, str | None]]:
    rows = query(env.duckdb_path, "SELECT symbol, day::VARCHAR AS day, status, bars, provider FROM raw.price_coverage")
    return {(r.symbol, r.day): (r.status, int(r.bars), r.provider) for r in rows.itertuples()}


def bundled(symbol: str) -> pd.DataFrame:
    """The bundled bars of ``symbol`` over the window."""
    return bundled_prices([symbol], FIRST, LAST)


def stored(env: PipelineEnv, symbol: str) -> pd.DataFrame:
    return stored_prices(env.duckdb_path, symbol)


def days_with_rows(env: PipelineEnv, table: str, symbol: str) -> list[str]:
    rows = query(env.duckdb_path, f"SELECT DISTINCT ts::DATE::VARCHAR AS d FROM {table} WHERE symbol = '{symbol}'")
    return sorted(rows["d"])


# ------------------------------------------------------------------------------------- listings and delistings


def test_a_coin_listed_inside_the_window_fails_nothing(env, server) -> None:
    server.set_faults(FaultConfig(listings={"FLUX": "2022-05-12"}))
    done = bootstrap(env, "BTC,ETH,FLUX")
    assert done.returncode == 0, tail(done)
    assert "FLUX: first bar on 2022-05-12: no provider has bars before it (listed then)" in done.stdout
    states = coverage(env)
    assert states[("FLUX", "2022-05-10")][:2] == ("no_data", 0) and states[("FLUX", "2022-05-11")][0] == "no_data"
    assert states[("FLUX", "2022-05-12")] == ("complete", 24, "binance")
    # every other symbol's days land and flow through features and the training set in the same run
    for symbol in ("BTC", "ETH"):
        assert days_with_rows(env, "features.feature_vectors", symbol) == DAYS
        assert days_with_rows(env, "ml.training_set", symbol)
    assert days_with_rows(env, "raw.prices", "FLUX") == DAYS[2:]


def test_a_coin_delisted_inside_the_window_fails_nothing(env, server) -> None:
    server.set_faults(FaultConfig(delistings={"FLUX": "2022-05-11"}))
    done = bootstrap(env, "BTC,FLUX")
    assert done.returncode == 0, tail(done)
    assert "FLUX: no bar after 2022-05-11: no provider has bars after it (delisted or halted)" in done.stdout
    assert coverage(env)[("FLUX", "2022-05-13")][0] == "no_data"
    assert days_with_rows(env, "features.feature_vectors", "BTC") == DAYS


def test_an_unknown_symbol_is_named_and_is_the_only_failure(env) -> None:
    done = bootstrap(env, "BTC,ZZZ")
    assert done.returncode == 1, tail(done)
    assert f"  ZZZ: no provider has any bar between {FIRST} and {LAST} (unknown or not listed)" in done.stdout
    assert "run the same command again" not in done.stdout  # a re-run would not help: not said
    pd.testing.assert_frame_equal(stored(env, "BTC")[PRICE_COLUMNS], bundled("BTC"), check_exact=True)
    assert days_with_rows(env, "ml.training_set", "BTC")


# ------------------------------------------------------------------------------------- bad values


def test_a_nan_close_in_one_symbol_fails_over_for_that_symbol_alone(env, server) -> None:
    server.set_faults(FaultConfig(corrupt={"binance:ETH": ["nan_close"]}))
    done = bootstrap(env, "BTC,ETH")
    assert done.returncode == 0, tail(done)
    pd.testing.assert_frame_equal(stored(env, "ETH")[PRICE_COLUMNS], bundled("ETH"), check_exact=True)
    assert set(stored(env, "ETH")["provider"]) == {"binance", "okx"}  # the day with the NaN came from OKX
    assert set(stored(env, "BTC")["provider"]) == {"binance"}
    assert re.search(r"ETH 2022-05-1\d: complete: binance: answer rejected: close nan at 2022-05-1\d \d\d:00 UTC",
                     done.stdout)  # fmt: skip


def test_a_day_every_provider_sends_nan_for_fails_that_symbol_day_alone(env, server) -> None:
    """Each provider's answer holds a NaN close in its middle bar: for ETH, every provider's answer for 05-12 is
    rejected, so that (symbol, day) alone fails; ETH's other days and every BTC day land and flow on."""
    nan = ["nan_close"]
    server.set_faults(FaultConfig(corrupt={f"{p}:ETH": nan for p in ("binance", "okx", "coinbase", "bitstamp")}))
    done = bootstrap(env, "BTC,ETH")
    assert done.returncode == 1, tail(done)
    line = next(line for line in done.stdout.splitlines() if line.startswith("  ETH: 1 day(s) failed (2022-05-12)"))
    for provider in ("binance", "okx", "coinbase", "bitstamp"):
        assert re.search(rf"{provider}: answer rejected: close nan at 2022-05-12 \d\d:00 UTC", line), line
    assert "run the same command again" in line
    states = {day: status for (symbol, day), (status, _, _) in coverage(env).items() if symbol == "ETH"}
    assert states == dict.fromkeys(DAYS, "complete") | {"2022-05-12": "failed"}
    assert days_with_rows(env, "features.feature_vectors", "BTC") == DAYS
    assert days_with_rows(env, "features.feature_vectors", "ETH") == ["2022-05-10", "2022-05-11", "2022-05-13"]
    assert days_with_rows(env, "ml.training_set", "BTC")
    assert "cross_provider_accuracy: passed" in done.stdout  # the second opinion is validated like the first


def test_a_negative_price_rejects_the_answer_and_names_it(env, server) -> None:
    server.set_faults(FaultConfig(corrupt={"binance:BTC": ["negative_price"]}))
    done = bootstrap(env, "BTC")
    assert done.returncode == 0, tail(done)
    pd.testing.assert_frame_equal(stored(env, "BTC")[PRICE_COLUMNS], bundled("BTC"), check_exact=True)
    assert re.search(r"BTC 2022-05-1\d: complete: binance: answer rejected: low -[0-9.]+ at 2022-05-1\d \d\d:00 UTC",
                     done.stdout)  # fmt: skip


def test_a_contradictory_duplicate_is_rejected_loudly_not_resolved(env, server) -> None:
    server.set_faults(FaultConfig(corrupt={"binance:BTC": ["conflicting_duplicate"]}))
    done = bootstrap(env, "BTC")
    assert done.returncode == 0, tail(done)
    pd.testing.assert_frame_equal(stored(env, "BTC")[PRICE_COLUMNS], bundled("BTC"), check_exact=True)
    assert set(stored(env, "BTC")["provider"]) == {"binance", "okx"}
    assert re.search(r"binance: answer rejected: two different bars for 2022-05-1\d 07:00 UTC \(close [0-9,.]+ and",
                     done.stdout)  # fmt: skip


# ------------------------------------------------------------------------------------- gaps and venues


def test_a_three_hour_gap_at_every_venue_stays_a_gap(env, server) -> None:
    hole = {"symbol": "BTC", "start": "2022-05-11T10:00", "hours": 3}
    server.set_faults(FaultConfig(holes=[hole]))
    done = bootstrap(env, "BTC,ETH")
    assert done.returncode == 0, tail(done)
    assert coverage(env)[("BTC", "2022-05-11")] == ("partial", 21, "binance")  # earlier in the order on ties
    assert "BTC: 1 partial day(s), 21 of 24 bars (2022-05-11)" in done.stdout
    features = query(
        env.duckdb_path,
        "SELECT symbol, ts, log_return_1h, realized_vol_24h, rsi_14, btc_corr_24h, gap_hours_24h, venues_24h "
        "FROM features.feature_vectors ORDER BY symbol, ts",
    )
    btc = features[features["symbol"] == "BTC"].set_index("ts")
    after = btc.loc[pd.Timestamp("2022-05-11T13:00Z")]
    assert pd.isna(after["log_return_1h"])  # never a 4-hour move labelled 1h
    assert after["gap_hours_24h"] == 3 and pd.isna(after["realized_vol_24h"]) and pd.isna(after["rsi_14"])
    day_later = btc.loc[pd.Timestamp("2022-05-12T13:00Z")]
    assert day_later["gap_hours_24h"] == 0 and pd.notna(day_later["realized_vol_24h"])
    eth = features[features["symbol"] == "ETH"].set_index("ts")
    # ETH's own bars are complete; its cross-asset features are null while BTC's window holds the gap
    assert pd.isna(eth.loc[pd.Timestamp("2022-05-11T13:00Z"), "btc_corr_24h"])
    assert eth.loc[pd.Timestamp("2022-05-11T13:00Z"), "gap_hours_24h"] == 0
    # the genuine gap did not block the training set (feature_null_rates judges complete windows only)
    assert "feature_null_rates: passed" in done.stdout
    training = query(env.duckdb_path, "SELECT * FROM ml.training_set WHERE symbol = 'BTC'")
    assert (training["gap_hours_24h"] == 0).all() and len(training) > 0


def test_a_partial_day_takes_the_complete_second_provider_whole(env, server) -> None:
    hole = {"symbol": "BTC", "start": "2022-05-11T10:00", "hours": 3, "providers": ["binance"]}
    server.set_faults(FaultConfig(holes=[hole]))
    done = bootstrap(env, "BTC")
    assert done.returncode == 0, tail(done)
    assert coverage(env)[("BTC", "2022-05-11")] == ("complete", 24, "okx")
    prices = stored(env, "BTC")
    pd.testing.assert_frame_equal(prices[PRICE_COLUMNS], bundled("BTC"), check_exact=True)
    by_day = prices.groupby(prices["ts"].dt.date)["provider"].agg(set).to_dict()
    assert all(len(providers) == 1 for providers in by_day.values())  # never stitched from two venues
    detail = query(env.duckdb_path, "SELECT detail FROM raw.price_coverage WHERE day = '2022-05-11'")["detail"][0]
    assert detail == "binance: 21 bars; okx: 24 bars"


def test_a_two_day_venue_switch_is_visible_in_the_features(env, server) -> None:
    holes = [{"symbol": "BTC", "start": "2022-05-11T00:00", "hours": 48, "providers": ["binance"]}]
    server.set_faults(FaultConfig(holes=holes))
    done = bootstrap(env, "BTC")
    assert done.returncode == 0, tail(done)
    states = coverage(env)
    assert [states[("BTC", day)][2] for day in DAYS] == ["binance", "okx", "okx", "binance"]
    venues = query(env.duckdb_path, "SELECT ts, venues_24h FROM features.feature_vectors ORDER BY ts").set_index("ts")
    assert venues.loc[pd.Timestamp("2022-05-11T05:00Z"), "venues_24h"] == 2  # the window reaches back to Binance
    assert venues.loc[pd.Timestamp("2022-05-12T05:00Z"), "venues_24h"] == 1
    assert venues.loc[pd.Timestamp("2022-05-13T05:00Z"), "venues_24h"] == 2
    training = query(env.duckdb_path, "SELECT venues_24h FROM ml.training_set")
    assert len(training) > 0 and 2 in set(training["venues_24h"]) and set(training["venues_24h"]) <= {1, 2}


# ------------------------------------------------------------------------------------- the small ones


def test_a_warehouse_path_with_a_quote_exports_and_loads(env) -> None:
    folder = env.root / "it's here"
    folder.mkdir()
    path = folder / "crypto.duckdb"
    done = bootstrap(env, "BTC", CRYPTO_ASSETS_DUCKDB=str(path))
    assert done.returncode == 0, tail(done)
    assert "load it:" in done.stdout
    assert (folder / "exports" / "ml.training_set.parquet").is_file()
    code = (
        "from crypto_assets import load_training_table; import sys; "
        "print(len(load_training_table(duckdb_path=sys.argv[1])))"
    )
    read = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert read.returncode == 0 and int(read.stdout) > 0, read.stderr


def test_a_held_lock_is_waited_for_with_progress_then_the_run_goes_on(env) -> None:
    assert bootstrap(env, "BTC").returncode == 0  # the warehouse exists
    holder = hold_file(env.duckdb_path, 6)
    began = time.monotonic()
    try:
        done = bootstrap(env, "BTC")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, tail(done)
    assert time.monotonic() - began >= 5
    assert re.search(rf"waiting for the warehouse: held by .*\(PID {holder.pid}\)", done.stdout + done.stderr)


def test_a_lock_held_too_long_ends_in_the_projects_own_words(env) -> None:
    assert bootstrap(env, "BTC").returncode == 0
    holder = hold_file(env.duckdb_path, 60)
    try:
        done = bootstrap(env, "BTC", CRYPTO_ASSETS_LOCK_TIMEOUT="2")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert f"(PID {holder.pid})" in text and "load_training_table()" in text
    assert "IOException" not in text and "Conflicting lock" not in text  # DuckDB's raw error is not the message
    assert "Traceback" not in text and "no summary of the warehouse: warehouse" in done.stdout
