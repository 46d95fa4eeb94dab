"""Reliability under faults, end to end: the real CLI in a subprocess, real Dagster runs on a fresh SQLite
instance, a real DuckDB file, and the replay server serving the bundled real data over local HTTP with
faults injected by the server (nothing mocked). Every case ends in one of two states: the stored data equals
the bundled real data exactly, or the run failed with a clear message and the previous data is intact.

Covered elsewhere, not repeated here: a day no provider serves, then recovery (test_bootstrap_e2e.py; the
secrets case below adds that news still lands on such a day), and readers looping over load_training_table()
during a bootstrap (test_reader_safety.py).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._serdes import serialize_value

from crypto_assets.config import REPO_ROOT
from crypto_assets.defs.prices import PRICE_FETCH_THREADS
from crypto_assets.preflight import PROBE_ATTEMPTS
from crypto_assets.providers.rss import RssClient
from crypto_assets.replay import server as replay_server_module
from crypto_assets.replay.data import load_bundled_news
from crypto_assets.replay.faults import DEFAULT_KINDS, FaultConfig, decide
from crypto_assets.replay.server import ReplayServer
from crypto_assets.schemas import TABLE_MODELS
from crypto_assets_tests.conftest import PipelineEnv, make_pipeline_env
from crypto_assets_tests.e2e_util import PRICE_COLUMNS, bundled_prices, query, stored_prices, tail

pytestmark = pytest.mark.slow

TABLES = tuple(TABLE_MODELS)
WALL_CLOCK_COLUMNS = ("ingested_at", "computed_at", "fetched_at")  # when a row was written: differs by run
RAW_PRICES = AssetKey(["raw", "prices"])

# The window several cases share: one clean bootstrap of it (module fixture) is the reference.
WINDOW = ("2022-05-10", "2022-05-12")
WINDOW_SYMBOLS = ("BTC", "ETH")
WINDOW_ARGS = ("bootstrap", "--start", WINDOW[0], "--end", WINDOW[1], "--symbols", ",".join(WINDOW_SYMBOLS))

# "coinbase: attempt 1/5 failed (HTTP 429 (...)); retrying in 1.00 s: http://..." (crypto_assets.http): a managed
# Python logger (dagster.yaml), so it lands in the run's event log and on the console, one line per retry.
RETRY_LINE = re.compile(r"\b(\w+): attempt (\d+)/(\d+) failed \((.*)\); retrying in ([0-9.]+) s: ")


# ------------------------------------------------------------------------------------------------ helpers


def table_names(path: Path) -> set[str]:
    rows = query(path, "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables")
    return set(rows["t"])


def assert_prices_exact(path: Path, symbols: tuple[str, ...], first_day: str, last_day: str) -> pd.DataFrame:
    prices = stored_prices(path)
    pd.testing.assert_frame_equal(prices[PRICE_COLUMNS], bundled_prices(symbols, first_day, last_day), check_exact=True)
    return prices


def table_differences(a: Path, b: Path, ignore: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Per table: (rows only in a, rows only in b) as multisets (EXCEPT ALL both ways), wall-clock columns and
    ``ignore`` aside.

    A table missing on one side counts all its rows; an empty result means the warehouses hold the same data.
    """
    differences: dict[str, tuple[int, int]] = {}
    in_a, in_b = table_names(a), table_names(b)
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        conn.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        for table in sorted(in_a | in_b):
            if table not in in_a or table not in in_b:
                side = "a" if table in in_a else "b"
                count = conn.execute(f"SELECT count(*) FROM {side}.{table}").fetchone()[0]
                differences[table] = (count, 0) if side == "a" else (0, count)
                continue
            columns = [row[0] for row in conn.execute(f"DESCRIBE a.{table}").fetchall()]
            keep = ", ".join(c for c in columns if c not in (*WALL_CLOCK_COLUMNS, *ignore))
            only_a = conn.execute(
                f"SELECT count(*) FROM (SELECT {keep} FROM a.{table} EXCEPT ALL SELECT {keep} FROM b.{table})"
            ).fetchone()[0]
            only_b = conn.execute(
                f"SELECT count(*) FROM (SELECT {keep} FROM b.{table} EXCEPT ALL SELECT {keep} FROM a.{table})"
            ).fetchone()[0]
            if only_a or only_b:
                differences[table] = (only_a, only_b)
    return differences


def row_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        names = table_names(path)
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES if t in names}


@contextmanager
def instance_of(env: PipelineEnv) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_config(str(env.dagster_home)) as instance:
        yield instance


def only_run(instance: DagsterInstance):
    runs = instance.get_runs()
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0]


def check_evaluations(instance: DagsterInstance, run_id: str) -> dict[str, object]:
    """The run's asset-check evaluations by check name."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    return {evaluation.check_name: evaluation for evaluation in evaluations}


def step_events(instance: DagsterInstance, run_id: str) -> set[tuple[str, str]]:
    records = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
    ).records
    return {(r.event_log_entry.dagster_event.event_type_value, r.event_log_entry.step_key) for r in records}


def prices_metadata(instance: DagsterInstance) -> dict[str, object]:
    record = instance.fetch_materializations(RAW_PRICES, limit=1).records[0]
    return {key: value.value for key, value in record.asset_materialization.metadata.items()}


def snapshot(env: PipelineEnv, target: Path) -> Path:
    """Copy the warehouse file (the writer has exited, so there is no WAL to carry) to ``target``."""
    assert not Path(f"{env.duckdb_path}.wal").exists()
    shutil.copy(env.duckdb_path, target)
    return target


# ------------------------------------------------------------------------------------------------ the clean window


@pytest.fixture(scope="module")
def clean_window(tmp_path_factory: pytest.TempPathFactory, replay_server: ReplayServer) -> tuple[PipelineEnv, Path]:
    """One fault-free bootstrap of WINDOW (its own instance and warehouse) and a snapshot of its warehouse."""
    root = tmp_path_factory.mktemp("clean")
    env = make_pipeline_env(root, replay_server)
    done = env.run(*WINDOW_ARGS)
    assert done.returncode == 0, tail(done)
    return env, snapshot(env, root / "reference.duckdb")


# ------------------------------------------------------------------------------------------------ 1. mixed faults


def pick_fault_seed(counts: dict[str, int], rate: float, kinds: list[str]) -> int:
    """A seed under which a run making ``counts`` requests per provider meets every fault kind, each fault is
    answered by one retry (never two faults in a row), the pre-flight probes (each provider's first request) and
    GDELT (whose 429 carries no Retry-After) get none, Binance (raw/prices) gets one, and "slow" (a 21 s read
    timeout) at most once. The fault stream is per provider (faults.decide), so thread timing cannot change it."""
    for seed in range(100_000):
        config = FaultConfig(rate=rate, kinds=kinds, seed=seed)
        seen: dict[str, int] = dict.fromkeys(kinds, 0)
        by_provider: dict[str, int] = {}
        ok = True
        for provider, count in counts.items():
            n = answered = 0
            while ok and answered < count:
                fault = decide(config, n, provider)
                if fault is None:
                    answered += 1
                elif n == 0 or provider == "gdelt" or decide(config, n + 1, provider) is not None:
                    ok = False
                else:
                    seen[fault.kind] += 1
                    by_provider[provider] = by_provider.get(provider, 0) + 1
                n += 1
        if ok and all(seen.values()) and by_provider.get("binance"):
            return seed
    raise AssertionError(f"no seed fits {counts}")


def test_ten_percent_faulty_responses_mixed(pipeline_env, tmp_path) -> None:
    """Every fault ends in a retry (none is swallowed or taken as data), the data is exact, the run reports them."""
    symbols = ("BTC", "ETH", "SOL")
    first, last = "2022-05-10", "2022-05-13"
    args = ("bootstrap", "--start", first, "--end", last, "--symbols", ",".join(symbols))
    with ReplayServer() as clean:  # what the run asks of each provider when nothing goes wrong
        assert make_pipeline_env(tmp_path / "clean", clean).run(*args).returncode == 0
        counts = {provider: count for provider, count in clean.stats().items() if count}
    kinds = list(DEFAULT_KINDS)  # all but "slow": a read timeout costs 20 s here; test_http covers it
    seed = pick_fault_seed(counts, 0.1, kinds)

    server = pipeline_env.server
    server.set_faults(FaultConfig(rate=0.1, kinds=kinds, seed=seed))
    done = pipeline_env.run(*args)
    assert done.returncode == 0, tail(done)

    served = server.fault_stats()
    assert all(served[kind] >= 1 for kind in kinds), served
    retries = RETRY_LINE.findall(done.stdout + done.stderr)
    # One retry per fault: a fault never reaches the data, and never fails a request that one retry would fix.
    assert len(retries) == sum(served.values()), (served, retries)
    waits_after_429 = [wait for _, _, _, reason, wait in retries if reason.startswith("HTTP 429")]
    assert waits_after_429 == ["1.00"] * served["429"], "a 429 waits exactly its Retry-After (1 s)"

    prices = assert_prices_exact(pipeline_env.duckdb_path, symbols, first, last)
    assert set(prices["provider"]) == {"binance"}  # retried, not failed over
    news = load_bundled_news()
    in_window = (news["published_at"] >= pd.Timestamp(first, tz="UTC")) & (
        news["published_at"] < pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=1)
    )
    servable = news[in_window & (news["title"].str.strip() != "") & (news["url"] != "")]
    assert query(pipeline_env.duckdb_path, "SELECT count(*) AS n FROM raw.news")["n"][0] == len(servable)

    binance = [float(wait) for provider, _, _, _, wait in retries if provider == "binance"]
    assert binance
    with instance_of(pipeline_env) as instance:
        assert only_run(instance).status == DagsterRunStatus.SUCCESS
        metadata = prices_metadata(instance)
    # raw/prices is the only asset calling Binance, so its retries are exactly the Binance retry lines.
    assert metadata["http_retries"] == len(binance)
    # Log lines round each wait to 0.01 s (off by <= 0.005 each), the metadata rounds the total to 0.001 s.
    assert metadata["http_retry_wait_s"] == pytest.approx(sum(binance), abs=0.005 * len(binance) + 0.0006)


def test_live_like_providers_land_exact_bars_and_gdelt_news_without_calling_cryptocompare(pipeline_env) -> None:
    """The replay as the providers behave in late 2026 (FaultConfig.live_like: 5% faults, CryptoCompare and
    NewsAPI answer 401 without a key, GDELT answers 429 to a third of its requests) and no provider variables or
    keys: the default keyless providers land the exact bars and GDELT's news; CryptoCompare is never called."""
    server = pipeline_env.server
    server.set_faults(FaultConfig.live_like(seed=5))
    env = {k: v for k, v in pipeline_env.env.items() if not k.endswith("_API_KEY")}
    assert "CRYPTO_ASSETS_PRICE_PROVIDERS" not in env and "CRYPTO_ASSETS_NEWS_PROVIDERS" not in env
    symbols = ("BTC", "ETH", "SOL", "XRP", "BNB", "ADA")
    first, last = "2022-06-01", "2022-06-10"
    done = dataclasses.replace(pipeline_env, env=env).run("bootstrap", "--start", first, "--end", last)
    assert done.returncode == 0, tail(done)
    assert server.stats()["cryptocompare"] == 0 and server.stats()["newsapi"] == 0
    shed = [line for line in RETRY_LINE.findall(done.stdout + done.stderr) if line[0] == "gdelt"]
    assert shed and all("HTTP 429" in reason for _, _, _, reason, _ in shed)  # GDELT shed load; it was retried
    assert_prices_exact(pipeline_env.duckdb_path, symbols, first, last)
    news = query(pipeline_env.duckdb_path, "SELECT provider, count(*) AS n FROM raw.news GROUP BY ALL")
    assert dict(zip(news["provider"], news["n"], strict=True)).get("gdelt", 0) > 100
    coverage = query(
        pipeline_env.duckdb_path,
        "SELECT status, count(*) AS n FROM raw.news_coverage WHERE provider = 'gdelt' GROUP BY ALL",
    )
    assert set(coverage["status"]) <= {"ok", "failed"}  # what GDELT could not answer is recorded, never hidden
    assert "news: " in done.stdout and "prices: 60 symbol-days: 60 complete" in done.stdout


def test_a_truncated_rss_feed_is_retried_not_half_read() -> None:
    """feedparser reads a feed cut in half without complaint (9 of 20 items): the client must retry it instead."""
    seed = next(
        s
        for s in range(1000)
        if (f := decide(FaultConfig(rate=0.5, kinds=["truncated"], seed=s), 0, "rss")) is not None
        and f.kind == "truncated"
        and decide(FaultConfig(rate=0.5, kinds=["truncated"], seed=s), 1, "rss") is None
    )
    start = datetime(2022, 1, 1, tzinfo=UTC)

    def client(server: ReplayServer) -> RssClient:
        feeds = server.env()["CRYPTO_ASSETS_RSS_FEEDS"].split(",")[:1]
        return RssClient(options={"feeds": feeds}, rate_limited=False)

    with ReplayServer() as clean:
        whole = client(clean).fetch(start, clean.clock, now=clean.clock).articles
    with ReplayServer(faults=FaultConfig(rate=0.5, kinds=["truncated"], seed=seed)) as faulty:
        rss = client(faulty)
        got = rss.fetch(start, faulty.clock, now=faulty.clock).articles
        assert faulty.fault_stats()["truncated"] == 1 and faulty.stats()["rss"] == 2
    assert rss.http.stats()["retries"] == 1
    assert len(whole) == 20
    pd.testing.assert_frame_equal(got, whole)


# ------------------------------------------------------------------------------------------------ 2. primary down


def test_primary_down_for_the_whole_run(pipeline_env) -> None:
    server = pipeline_env.server
    server.set_faults(FaultConfig(down=["binance"]))
    symbols = ("BTC", "ETH")
    first, last = "2022-05-04", "2022-05-13"  # 10 days
    began = time.monotonic()
    done = pipeline_env.run("bootstrap", "--start", first, "--end", last, "--symbols", ",".join(symbols))
    elapsed = time.monotonic() - began
    assert done.returncode == 0, tail(done)
    prices = assert_prices_exact(pipeline_env.duckdb_path, symbols, first, last)
    assert set(prices["provider"]) == {"okx"}  # the next of the default order

    # How many requests the dead provider gets. Each call makes 5 attempts (503 is retryable) and then counts as
    # one failure of the breaker, which opens at the 5th consecutive failure. The symbols are fetched concurrently,
    # each bisecting its failed 10-day request while the breaker is closed ([10] -> [5] -> [2] -> [1] ...): 5 failed
    # calls open it, and each other symbol may have one call in flight then (2 symbols: 5 or 6 calls, 25 or 30
    # requests). After that every remaining day-run, and the second-provider samples of the checks and quality
    # scores, is refused without a request. Only after the 60 s cooldown may one half-open probe pass (1 attempt, it
    # fails and re-opens the breaker for another 60 s): at most one more request per 60 s of run.
    probes_allowed = int(elapsed // 60)
    concurrent = min(PRICE_FETCH_THREADS, len(symbols))
    with instance_of(pipeline_env) as instance:
        metadata = prices_metadata(instance)
    # Every failed call was retried 4 times; a probe is never retried.
    failed_calls, odd = divmod(metadata["http_retries"], 4)
    assert odd == 0 and 5 <= failed_calls <= 5 + concurrent - 1, metadata["http_retries"]
    probes = server.stats()["binance"] - 5 * failed_calls - PROBE_ATTEMPTS  # the pre-flight's attempts aside
    assert 0 <= probes <= probes_allowed, (server.stats(), failed_calls, elapsed)
    # Backoff is full jitter, at most 0.5 + 1 + 2 + 4 s a call.
    assert 0 < metadata["http_retry_wait_s"] <= failed_calls * 7.5
    assert metadata["providers_used"] == {"okx": len(prices)}
    assert re.search(r"prices binance +unreachable \(\d+ ms\): HTTP 503", done.stdout)  # the pre-flight says so


# ------------------------------------------------------------------------------------------------ 4. corrupt bodies


def test_corrupt_provider_bodies(pipeline_env, clean_window) -> None:
    """Every provider's answer is corrupt in its own way, and none of it reaches the warehouse:

    - Binance sends a junk price string (an answer that does not parse: asked day by day, then failed over);
    - OKX sends duplicated, shuffled bars and leaves out the 13:00 bar of every day (23 of 24: partial, so the
      next provider is asked);
    - Coinbase swaps high and low of one bar per answer (that day's answer is rejected, named with its bar);
    - Bitstamp is clean.
    The most complete acceptable answer wins each day: the stored bars equal the clean run's, every column."""
    _, reference = clean_window
    server = pipeline_env.server
    server.set_faults(
        FaultConfig(
            corrupt={
                "binance": ["junk_strings"],
                "okx": ["duplicates", "out_of_order", "gap"],
                "coinbase": ["high_lt_low"],
            }
        )
    )
    done = pipeline_env.run(*WINDOW_ARGS)
    assert done.returncode == 0, tail(done)
    prices = assert_prices_exact(pipeline_env.duckdb_path, WINDOW_SYMBOLS, *WINDOW)
    assert set(prices["provider"]) <= {"coinbase", "bitstamp"} and "bitstamp" in set(prices["provider"])

    coverage = query(pipeline_env.duckdb_path, "SELECT * FROM raw.price_coverage ORDER BY symbol, day")
    assert set(coverage["status"]) == {"complete"}
    for detail in coverage["detail"]:
        assert "binance: " in detail and "is not a number in row" in detail, detail
        assert "okx: 23 bars" in detail, detail
    rejected = coverage[coverage["detail"].str.contains("coinbase: answer rejected: high")]
    assert len(rejected) == len(WINDOW_SYMBOLS)  # one swapped bar per answer, one answer per symbol
    assert set(rejected["provider"]) == {"bitstamp"}
    # the message names the provider, the bar time and the values; the log line adds the symbol
    assert re.search(
        r"coinbase: answer rejected: high [0-9,.]+ below low [0-9,.]+ at 2022-05-1\d \d\d:00 UTC",
        rejected["detail"].iloc[0],
    )
    assert re.search(r"(BTC|ETH) 2022-05-1\d: complete: .*coinbase: answer rejected", done.stdout)
    with instance_of(pipeline_env) as instance:
        run = only_run(instance)
        checks = check_evaluations(instance, run.run_id)
    assert checks["ohlc_consistency"].passed and checks["no_duplicate_bars"].passed and checks["completeness"].passed
    # Only who served the bars (the provider, how many venues a window holds, what each provider answered) differs
    # from the clean run; every value of every derived table is equal.
    differences = table_differences(pipeline_env.duckdb_path, reference, ignore=("provider", "venues_24h", "detail"))
    assert set(differences) <= {"quality.partition_scores"}, differences


# ------------------------------------------------------------------------------------------------ 5. kill -9


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"the bootstrap exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_kill_9_in_the_middle_then_rerun(pipeline_env, clean_window) -> None:
    _, reference = clean_window
    server = pipeline_env.server
    log = pipeline_env.root / "killed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crypto_assets", *WINDOW_ARGS],
            env=pipeline_env.env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with instance_of(pipeline_env) as instance:

            def steps() -> set[tuple[str, str]]:
                runs = instance.get_runs()
                return step_events(instance, runs[0].run_id) if runs else set()

            _wait_for(lambda: ("STEP_SUCCESS", "raw__prices") in steps(), "raw/prices was written", proc)
            # Every answer now takes 3 s (under the 20 s read timeout: slow, not failed), so the quality-score step,
            # which holds the warehouse pool slot and asks a second provider per symbol, is caught mid-way.
            server.set_faults(FaultConfig(rate=1.0, kinds=["slow"], slow_seconds=3))
            _wait_for(lambda: ("STEP_START", "quality__partition_scores") in steps(), "the quality scores", proc)
            time.sleep(1.0)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            killed = only_run(instance)
            assert killed.status == DagsterRunStatus.STARTED  # nobody told Dagster
            held = instance.event_log_storage.get_concurrency_info("duckdb")
            assert [slot.run_id for slot in held.claimed_slots] == [killed.run_id], held
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = row_counts(pipeline_env.duckdb_path)
    assert partial["raw.prices"] == 3 * 24 * len(WINDOW_SYMBOLS) and partial.get("ml.training_set", 0) == 0, partial

    server.set_faults(FaultConfig())
    done = pipeline_env.run(*WINDOW_ARGS)
    assert done.returncode == 0, tail(done)
    assert f"marked abandoned run {killed.run_id}" in done.stdout
    with instance_of(pipeline_env) as instance:
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
        statuses = sorted(run.status.value for run in instance.get_runs())
        assert statuses == ["FAILURE", "SUCCESS"]
        info = instance.event_log_storage.get_concurrency_info("duckdb")
        assert info.claimed_slots == [] and info.pending_steps == [], info
    # Same data as a clean run: every table, multiset equality (so no duplicates either).
    assert table_differences(pipeline_env.duckdb_path, reference) == {}


# ------------------------------------------------------------------------------------------------ 7. re-run


def test_rerunning_the_same_bootstrap_changes_nothing(clean_window) -> None:
    env, reference = clean_window
    before = row_counts(reference)
    assert before["ml.training_set"] > 0 and len(before) == len(TABLES)
    done = env.run(*WINDOW_ARGS)
    assert done.returncode == 0, tail(done)
    assert table_differences(env.duckdb_path, reference) == {}
    assert row_counts(env.duckdb_path) == before


# ------------------------------------------------------------------------------------------------ 8. bad input


def test_unknown_but_well_formed_symbol(pipeline_env) -> None:
    """ZZZQ passes the syntax check; every provider says it does not list it. A definite answer: not retried,
    recorded as no_data, named in the summary as unknown or not listed, and the exit code is 1; BTC lands."""
    done = pipeline_env.run("bootstrap", "--start", "2022-05-10", "--end", "2022-05-11", "--symbols", "BTC,ZZZQ")
    assert done.returncode == 1, tail(done)
    assert "  ZZZQ: no provider has any bar between 2022-05-10 and 2022-05-11 (unknown or not listed)" in done.stdout
    coverage = query(pipeline_env.duckdb_path, "SELECT * FROM raw.price_coverage WHERE symbol = 'ZZZQ'")
    assert set(coverage["status"]) == {"no_data"} and len(coverage) == 2
    detail = coverage["detail"].iloc[0]
    assert "binance: not listed (unknown symbol ZZZQUSDT: Invalid symbol. (HTTP 400))" in detail
    assert "okx: not listed" in detail and "coinbase: not listed (unknown product ZZZQ-USD" in detail
    assert "bitstamp: not listed" in detail
    stats = pipeline_env.server.stats()
    # both days in one request per provider (plus Binance's pre-flight probe): no retry, no bisection
    assert stats["binance"] == 1 + 1 + 1 and stats["coinbase"] == 1 + 1
    assert_prices_exact(pipeline_env.duckdb_path, ("BTC",), "2022-05-10", "2022-05-11")
    assert row_counts(pipeline_env.duckdb_path)["ml.training_set"] > 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--start", "2021-12-25", "--end", "2022-01-02"), {}, "before the first partition 2022-01-01"),
        (("--days", "100000"), {}, "before the first partition"),
        (("--start", "2022-05-10", "--end", f"{datetime.now(UTC).date()}"), {}, "not a complete UTC day yet"),
        (
            (),
            {"CRYPTO_ASSETS_ALERT_WEBHOOK": "hooks.slack.com/services/T0/B0/s3cr3tToken"},
            "CRYPTO_ASSETS_ALERT_WEBHOOK is set but does not start with http:// or https://",
        ),
        ((), {"CRYPTO_ASSETS_ALERT_WEBHOOK": "https:///services/s3cr3tToken"}, "has no host name"),
        ((), {"CRYPTO_ASSETS_DUCKDB": "{root}/a_file/crypto.duckdb"}, "cannot open warehouse"),
        # sysfs: no regular file can be created there, not even by root (refused by access() or by DuckDB)
        ((), {"CRYPTO_ASSETS_DUCKDB": "/sys/crypto.duckdb"}, "cannot open warehouse|is not writable"),
        ((), {"CRYPTO_ASSETS_DUCKDB": "{root}/read_only/crypto.duckdb"}, "is not writable"),
    ],
    ids=[
        "start-before",
        "days-too-many",
        "end-today",
        "webhook-no-scheme",
        "webhook-no-host",
        "under-a-file",
        "sys",
        "555",
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(pipeline_env, args, env, message) -> None:
    root = pipeline_env.root
    (root / "a_file").write_text("not a folder")
    (root / "read_only").mkdir()
    (root / "read_only").chmod(0o555)
    if "read_only" in env.get("CRYPTO_ASSETS_DUCKDB", "") and os.geteuid() == 0:
        pytest.skip("runs as root, which may write into a mode-555 folder (the other cases cover unwritable paths)")
    extra = {key: value.format(root=root) for key, value in env.items()}
    if not args:
        args = ("--start", "2022-05-10", "--end", "2022-05-10")
    done = pipeline_env.run("bootstrap", *args, "--symbols", "BTC", **extra)
    assert done.returncode == 2, tail(done)
    assert "s3cr3tToken" not in done.stderr + done.stdout  # a webhook URL is a secret: never echoed
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crypto-assets: error: ") and re.search(message, lines[0]), lines
    assert "not a DuckDB file" not in lines[0]  # none of these paths is a file: that hint would mislead
    assert done.stdout == ""
    assert not pipeline_env.duckdb_path.exists()
    assert sum(pipeline_env.server.stats().values()) == 0
    with instance_of(pipeline_env) as instance:
        assert instance.get_runs() == []


# ------------------------------------------------------------------------------------------------ 9. secrets

SECRET = "sk-test-SECRET"


def test_the_api_key_is_sent_but_never_shown_or_stored(pipeline_env, monkeypatch) -> None:
    """CryptoCompare is the only price provider (so the key is used for prices and news) and its prices are down
    for one of the two days, so the error paths (retries, the failed partition, the run failure) are scanned too."""
    sent: list[tuple[str, str | None]] = []
    serve = replay_server_module._Handler._serve

    def recording(handler, method: str) -> None:  # observes the real requests; the answer is unchanged
        sent.append((handler.path.split("?")[0], handler.headers.get("authorization")))
        serve(handler, method)

    monkeypatch.setattr(replay_server_module._Handler, "_serve", recording)
    pipeline_env.server.set_faults(FaultConfig(down_days=["2022-05-11"], require_keys=["cryptocompare"]))
    done = pipeline_env.run(
        "bootstrap",
        "--start",
        "2022-05-10",
        "--end",
        "2022-05-11",
        "--symbols",
        "BTC",
        CRYPTOCOMPARE_API_KEY=SECRET,
        CRYPTO_ASSETS_PRICE_PROVIDERS="cryptocompare",
        CRYPTO_ASSETS_NEWS_PROVIDERS="cryptocompare,rss",
    )
    assert done.returncode == 1, tail(done)
    assert "BTC: 1 day(s) failed (2022-05-11): cryptocompare: HTTP 503" in done.stdout
    assert RETRY_LINE.search(done.stdout + done.stderr)
    # The key was really used, as a header, for prices and news.
    keyed = {path for path, auth in sent if auth == f"Apikey {SECRET}"}
    assert {"/cryptocompare/data/v2/histohour", "/cryptocompare/data/v2/news/"} <= keyed, sent

    # The day whose prices failed still has its news (news does not depend on the price providers).
    days = query(pipeline_env.duckdb_path, "SELECT DISTINCT CAST(published_at AS DATE) AS d FROM raw.news")
    assert {str(d.date()) for d in pd.to_datetime(days["d"])} == {"2022-05-10", "2022-05-11"}
    assert_prices_exact(pipeline_env.duckdb_path, ("BTC",), "2022-05-10", "2022-05-10")

    assert SECRET not in done.stdout and SECRET not in done.stderr
    with instance_of(pipeline_env) as instance:
        runs = instance.get_runs()
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]  # one failed symbol-day fails nothing else
        for run in runs:
            assert SECRET not in serialize_value(run)  # tags, run config
            assert SECRET not in serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
            assert SECRET not in serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id))
            records = instance.all_logs(run.run_id)
            assert len(records) > 50
            for record in records:  # logs, step failures (exception messages), materialization and check metadata
                assert SECRET not in str(record) and SECRET not in serialize_value(record)
    with duckdb.connect(str(pipeline_env.duckdb_path), read_only=True) as conn:
        columns = conn.execute(
            "SELECT table_schema || '.' || table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        assert len(columns) > 10
        for table, column in columns:
            hits = conn.execute(f"SELECT count(*) FROM {table} WHERE contains({column}, ?)", [SECRET]).fetchone()[0]
            assert hits == 0, (table, column)
    for path in pipeline_env.root.rglob("*"):  # every file: SQLite storage, logs, DuckDB, Parquet exports
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
