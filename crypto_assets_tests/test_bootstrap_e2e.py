"""End to end: the real CLI, real Dagster runs on a real SQLite instance, a real DuckDB file, and the replay
server serving the bundled real data over HTTP (faults injected by the server where a test says so)."""

from __future__ import annotations

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from crypto_assets.bootstrap import _next_step, _root_cause
from crypto_assets.http import UNRESOLVED_HOST
from crypto_assets.replay.data import load_bundled_news
from crypto_assets.replay.faults import FaultConfig
from crypto_assets_tests.e2e_util import PRICE_COLUMNS, bundled_prices, query, stored_prices

pytestmark = pytest.mark.slow


def test_demo_bootstrap_lands_exactly_the_bundled_bars(demo_pipeline):
    prices = stored_prices(demo_pipeline.duckdb_path)
    assert len(prices) == 6 * 2160
    expected = bundled_prices()
    pd.testing.assert_frame_equal(prices[PRICE_COLUMNS], expected, check_exact=True)
    assert set(prices["provider"]) == {"binance"}

    news = query(demo_pipeline.duckdb_path, "SELECT * FROM raw.news")
    source = load_bundled_news()
    # GDELT indexes URLs: every bundled article with a title and a URL (not the Reuters rows), de-duplicated
    servable = source[(source["title"].fillna("").str.strip() != "") & (source["url"] != "")]
    assert len(news) == len(servable)
    assert news["article_id"].is_unique
    assert set(news["provider"]) == {"gdelt"}  # the RSS items are GDELT's too: de-duplicated to the first provider
    # GDELT answered for the whole window: every hour is covered, so sentiment is known (0.0 = looked, found none)
    uncovered = query(
        demo_pipeline.duckdb_path,
        "SELECT count(*) AS n FROM features.sentiment_hourly WHERE sentiment_mean_24h IS NULL",
    )["n"][0]
    assert uncovered == 0
    coverage = query(demo_pipeline.duckdb_path, "SELECT * FROM raw.news_coverage WHERE provider = 'gdelt'")
    assert set(coverage["status"]) == {"ok"} and len(coverage) == 90  # one row per day of the answer

    for table in ("features.technical_indicators", "features.feature_vectors", "features.sentiment_hourly"):
        assert query(demo_pipeline.duckdb_path, f"SELECT count(*) AS n FROM {table}")["n"][0] == 6 * 2160

    out = demo_pipeline.output
    assert "SUCCESS" in out and "rows per table" in out and "ml.training_set" in out
    assert str(demo_pipeline.duckdb_path) in out

    runs = DagsterInstance.from_config(str(demo_pipeline.dagster_home)).get_runs()
    assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]
    assert runs[0].tags["dagster/asset_partition_range_start"] == "2022-05-04"


def test_failover_to_the_next_provider_records_it(pipeline_env):
    pipeline_env.server.set_faults(FaultConfig(down=["binance"]))
    done = pipeline_env.run("bootstrap", "--start", "2022-05-10", "--end", "2022-05-11", "--symbols", "BTC,ETH")
    assert done.returncode == 0, done.stdout + done.stderr
    prices = stored_prices(pipeline_env.duckdb_path)
    assert set(prices["provider"]) == {"okx"}  # the next provider of the default order
    expected = bundled_prices(["BTC", "ETH"], "2022-05-10", "2022-05-11")
    pd.testing.assert_frame_equal(prices[PRICE_COLUMNS], expected, check_exact=True)
    # The circuit breaker opened after 5 failed calls of 5 attempts (the other symbol, fetched concurrently, may
    # have had one more call in flight), plus at most one half-open probe: the dead provider was not hammered.
    # The pre-flight's probe adds its own two attempts.
    binance_calls = pipeline_env.server.stats()["binance"]
    assert 5 * 5 + 2 <= binance_calls <= (5 + 1) * 5 + 1 + 2


WALL_CLOCK_COLUMNS = {"ingested_at", "computed_at", "fetched_at"}


def snapshot(path, directory) -> dict[str, str]:
    """Every warehouse table copied to Parquet (wall-clock columns dropped), for EXCEPT ALL comparisons."""
    copies = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            columns = [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall() if r[0] not in WALL_CLOCK_COLUMNS]
            target = directory / f"{table}.parquet"
            conn.execute(f"COPY (SELECT {', '.join(columns)} FROM {table}) TO '{target}' (FORMAT parquet)")
            copies[table] = str(target)
    return copies


def test_rerunning_a_range_leaves_identical_tables(pipeline_env, tmp_path):
    args = ("bootstrap", "--start", "2022-05-04", "--end", "2022-05-05", "--symbols", "BTC,SOL")
    assert pipeline_env.run(*args).returncode == 0
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = snapshot(pipeline_env.duckdb_path, tmp_path / "first")
    assert pipeline_env.run(*args).returncode == 0
    second = snapshot(pipeline_env.duckdb_path, tmp_path / "second")
    assert set(first) == set(second) >= {"raw.prices", "raw.news", "features.feature_vectors", "ml.training_set"}
    with duckdb.connect() as conn:
        for table in first:
            a, b = f"read_parquet('{first[table]}')", f"read_parquet('{second[table]}')"
            extra = conn.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()[0]
            lost = conn.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()[0]
            assert (extra, lost) == (0, 0), f"{table}: {extra} rows added, {lost} rows lost by the re-run"


def test_a_day_no_provider_serves_fails_alone_and_recovers(pipeline_env):
    """A (symbol, day) is the unit of failure: the day every provider fails on is recorded ``failed`` (and the
    command exits 1 saying a re-run helps), while the other days land and flow through features and the
    training set in the same run; the re-run fills it."""
    server = pipeline_env.server
    args = ("bootstrap", "--start", "2022-05-04", "--end", "2022-05-06", "--symbols", "BTC")
    server.set_faults(FaultConfig(down_days=["2022-05-05"]))
    done = pipeline_env.run(*args, CRYPTO_ASSETS_PRICE_PROVIDERS="binance,okx")  # two: each retries a while
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "prices: 3 symbol-days: 2 complete, 0 partial, 0 no_data, 1 failed" in out
    failed_line = next(line for line in out.splitlines() if line.startswith("  BTC: 1 day(s) failed (2022-05-05)"))
    for provider in ("binance", "okx"):
        assert f"{provider}: HTTP 503" in failed_line, failed_line
    assert "run the same command again once a provider recovers" in failed_line
    days = query(pipeline_env.duckdb_path, "SELECT DISTINCT ts::DATE AS day FROM raw.prices ORDER BY day")
    assert [str(d.date()) for d in pd.to_datetime(days["day"])] == ["2022-05-04", "2022-05-06"]
    coverage = query(pipeline_env.duckdb_path, "SELECT day::VARCHAR AS day, status, bars FROM raw.price_coverage")
    assert sorted(map(tuple, coverage.to_numpy().tolist())) == [
        ("2022-05-04", "complete", 24),
        ("2022-05-05", "failed", 0),
        ("2022-05-06", "complete", 24),
    ]
    # the served days flowed on in the same run
    features = query(pipeline_env.duckdb_path, "SELECT DISTINCT ts::DATE AS day FROM features.feature_vectors")
    assert len(features) == 2

    server.set_faults(FaultConfig())
    done = pipeline_env.run("bootstrap", "--start", "2022-05-05", "--end", "2022-05-05", "--symbols", "BTC")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "load it:" in done.stdout and "next:" not in done.stdout
    assert "recomputing 2022-05-06 .. 2022-05-06" in done.stdout  # its look-back reaches the day just filled
    prices = stored_prices(pipeline_env.duckdb_path)
    expected = bundled_prices(["BTC"], "2022-05-04", "2022-05-06")
    pd.testing.assert_frame_equal(prices[PRICE_COLUMNS], expected, check_exact=True)
    statuses = query(pipeline_env.duckdb_path, "SELECT DISTINCT status FROM raw.price_coverage")["status"]
    assert list(statuses) == ["complete"]


def test_after_a_failed_run_the_summary_says_what_to_do() -> None:
    """The closing hint of a failed bootstrap, from its failed steps' messages (their wording: test_http)."""
    offline = (
        "raw/prices: binance: connection error: "
        f"{UNRESOLVED_HOST} data-api.binance.vision (DNS lookup failed) after 5 attempts (https://...)"
    )
    hint = _next_step(["2 of 2 days could not be served by any provider", offline])
    assert "offline or needs a proxy (HTTPS_PROXY)" in hint and "`crypto-assets demo`" in hint
    assert _next_step(["1 of 3 days could not be served by any provider"]).startswith("next: what landed is kept")


class ProviderDown(RuntimeError):
    pass


@dg.asset
def says_why() -> None:
    raise dg.Failure(description="1 of 3 days could not be served by any provider\nbinance: down")


@dg.asset
def breaks() -> None:
    try:
        raise ConnectionError("socket closed")
    except ConnectionError as exc:
        raise ProviderDown("binance: unreachable") from exc


def test_a_failed_steps_cause_is_read_from_its_failure_event() -> None:
    """A dg.Failure's description as the asset wrote it; any other error as the user's exception and its causes."""
    with DagsterInstance.ephemeral() as instance:
        causes = {}
        for asset in (says_why, breaks):
            result = dg.materialize([asset], instance=instance, raise_on_error=False)
            (failure,) = result.get_step_failure_events()
            causes[failure.step_key] = _root_cause(failure)
    assert causes["says_why"] == "1 of 3 days could not be served by any provider | binance: down"
    assert causes["breaks"].endswith("ProviderDown: binance: unreachable; caused by: ConnectionError: socket closed")
    assert not any("dagster" in cause or "executing op" in cause for cause in causes.values())
