"""The production instance (deploy/postgres/dagster.yaml) against the real PostgreSQL server on 127.0.0.1:5432.

Nothing is mocked: the real CLI, real Dagster runs, a real DuckDB file, the replay server over HTTP, and a
database + login role of their own on the server (created here, dropped at the end). When the server is
unreachable every test that needs it is SKIPPED with a loud reason (and a warning line): never a silent pass.

What the tests establish about the run queue (see docs/deploy.md):
- `crypto-assets bootstrap` executes its run IN PROCESS: it never enters the run queue, but its steps claim
  `duckdb` pool slots in PostgreSQL, so two concurrent bootstraps write the warehouse one step at a time;
- runs submitted to the instance (`dagster job launch`, UI, schedules) wait QUEUED until `dagster-daemon`
  dequeues them, one at a time (`max_concurrent_runs: 1`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg2
import pytest
from psycopg2 import sql

from crypto_assets import warehouse as wh
from crypto_assets.config import REPO_ROOT
from crypto_assets.replay.data import load_bundled_prices
from crypto_assets.replay.faults import FaultConfig
from crypto_assets.replay.server import ReplayServer
from crypto_assets.symbols import DEFAULT_UNIVERSE
from crypto_assets_tests.conftest import PipelineEnv, make_pipeline_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
# The admin connection that creates (and drops) the test role and databases; trust auth needs no password.
ADMIN_USER = os.environ.get("CRYPTO_ASSETS_TEST_PG_ADMIN", "postgres")
ADMIN_PASSWORD = os.environ.get("CRYPTO_ASSETS_TEST_PG_ADMIN_PASSWORD", "")
DEPLOY_YAML = REPO_ROOT / "deploy" / "postgres" / "dagster.yaml"
BIN = Path(sys.executable).parent
FIRST = ("2022-05-04", "2022-05-06")
SECOND = ("2022-05-07", "2022-05-09")
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class PgServer:
    admin: psycopg2.extensions.connection
    user: str
    password: str
    token: str  # the random part of the password: it must never show up in any output
    databases: list[str] = field(default_factory=list)

    def create_database(self) -> str:
        name = f"crypto_assets_test_{secrets.token_hex(4)}"
        with self.admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user)))
        self.databases.append(name)
        return name

    def connect(self, db: str) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=self.user, password=self.password, dbname=db)
        conn.autocommit = True
        return conn

    def env(self, db: str) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": PG_HOST,
            "DAGSTER_PG_PORT": str(PG_PORT),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": db,
        }


def _skip_loudly(reason: str) -> None:
    message = f"POSTGRES TESTS SKIPPED - NOT RUN: {reason}"
    print(f"\nWARNING: {message}", file=sys.__stderr__, flush=True)
    warnings.warn(message, pytest.PytestWarning, stacklevel=2)
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A login role with a password of its own on the real server (every database below is owned by it)."""
    try:
        admin = psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=ADMIN_USER, password=ADMIN_PASSWORD, dbname="postgres", connect_timeout=5
        )
    except psycopg2.OperationalError as exc:
        _skip_loudly(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {ADMIN_USER!r} "
            f"({str(exc).strip().splitlines()[0]}); start it (docs/deploy.md) to test deploy/postgres/dagster.yaml"
        )
    admin.autocommit = True
    token = secrets.token_hex(12)
    server = PgServer(
        admin=admin, user=f"crypto_assets_test_{secrets.token_hex(4)}", password=f"Pw{token}/@:%?#", token=token
    )
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(server.user)), [server.password])
    try:
        yield server
    finally:
        with admin.cursor() as cur:
            for db in server.databases:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [db])
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(server.user)))
        admin.close()


def pg_pipeline_env(root: Path, server: ReplayServer, pg: PgServer, db: str) -> PipelineEnv:
    """The conftest's isolated environment, with DAGSTER_HOME holding a copy of deploy/postgres/dagster.yaml."""
    env = make_pipeline_env(root, server)
    home = root / "pg_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    env.env.update(pg.env(db), DAGSTER_HOME=str(home))
    return env


def query(conn: psycopg2.extensions.connection, text: str, params: list[object] | None = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(text, params or [])
        return cur.fetchall()


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def bootstrap_job_facts() -> tuple[set[str], set[str], set[tuple[str, str]], set[str]]:
    """From the definitions: partitioned and unpartitioned asset keys of the bootstrap job, its checks, pool steps."""
    from crypto_assets.definitions import defs

    job = defs.resolve_job_def("bootstrap")
    graph = job.asset_layer.asset_graph
    partitioned, unpartitioned = set(), set()
    for key in job.asset_layer.selected_asset_keys:
        (partitioned if graph.get(key).partitions_def is not None else unpartitioned).add(json.dumps(key.path))
    checks = {(json.dumps(k.asset_key.path), k.name) for k in graph.asset_check_keys}
    pool_steps = {node.name for node in job.graph.node_defs if getattr(node, "pool", None) == "duckdb"}
    return partitioned, unpartitioned, checks, pool_steps


def assert_warehouse_holds_exactly(duckdb_path: Path, ranges: list[tuple[str, str]]) -> None:
    """raw.prices equals the bundled bars of exactly these days; no duplicate key anywhere downstream."""
    wanted = [day for first, last in ranges for day in days(first, last)]
    bundled = load_bundled_prices()
    bundled = bundled[bundled["ts"].dt.strftime("%Y-%m-%d").isin(wanted) & bundled["symbol"].isin(DEFAULT_UNIVERSE)]
    columns = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    bundled = bundled.sort_values(["symbol", "ts"]).reset_index(drop=True)[columns]
    with wh.connect(duckdb_path, read_only=True) as conn:
        stored = conn.execute(f"SELECT {', '.join(columns)} FROM raw.prices ORDER BY symbol, ts").df()
        stored["ts"] = stored["ts"].dt.tz_convert("UTC").dt.as_unit("ns")
        assert len(bundled) == len(DEFAULT_UNIVERSE) * 24 * len(wanted)
        pd.testing.assert_frame_equal(stored, bundled, check_dtype=False)
        for table, key in [
            ("raw.prices", "symbol, ts"),
            ("features.technical_indicators", "symbol, ts"),
            ("features.feature_vectors", "symbol, ts"),
            ("features.sentiment_hourly", "symbol, ts"),
            ("raw.news", "article_id"),
            ("ml.training_set", "symbol, ts"),
        ]:
            total, distinct = conn.execute(f"SELECT count(*), count(DISTINCT ({key})) FROM {table}").fetchone()
            assert total == distinct > 0, f"{table}: {total} rows but {distinct} distinct ({key})"
        for table in ("features.technical_indicators", "features.feature_vectors"):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert count == len(bundled), f"{table}: {count} rows for {len(bundled)} bars"
        # The training set is rebuilt from every stored feature row: each range must be in it.
        for first, last in ranges:
            inside = conn.execute(
                "SELECT count(*) FROM ml.training_set WHERE ts >= ? AND ts < ?",
                [datetime.fromisoformat(first), datetime.fromisoformat(last) + timedelta(days=1)],
            ).fetchone()[0]
            assert inside > 0, f"ml.training_set has no row in {first} .. {last}"


# ------------------------------------------------------------------------------------- one bootstrap


@pytest.fixture(scope="module")
def pg_bootstrap(
    pg: PgServer, replay_server: ReplayServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, subprocess.CompletedProcess[str], str]:
    db = pg.create_database()
    env = pg_pipeline_env(tmp_path_factory.mktemp("pg_one"), replay_server, pg, db)
    done = env.run("bootstrap", "--start", FIRST[0], "--end", FIRST[1], timeout=600)
    if done.returncode != 0:
        pytest.fail(
            f"bootstrap on PostgreSQL failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return env, done, db


def cli_run_id(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("run ") and line.endswith(": SUCCESS")]
    assert len(lines) == 1, output[-2000:]
    return lines[0].split()[1].rstrip(":")


def cli_failed_checks(output: str) -> set[tuple[str, str]]:
    """The failed checks the CLI summary lists (`  FAILED <asset> <check>...` for blocking ones, `  warning ...`
    for WARN ones), as (asset key json, check name)."""
    failed = set()
    for line in output.splitlines():
        words = line.split()
        if line.startswith("  ") and len(words) >= 3 and words[0] in ("FAILED", "warning"):
            failed.add((json.dumps(words[1].split("/")), words[2].rstrip(":")))
    return failed


def test_bootstrap_run_materializations_and_checks_are_in_postgres(pg: PgServer, pg_bootstrap) -> None:
    """Queried with SQL straight from the server: the run, every partition's materialization, every check result."""
    env, done, db = pg_bootstrap
    run_id = cli_run_id(done.stdout)
    partitioned, unpartitioned, checks, _ = bootstrap_job_facts()
    conn = pg.connect(db)
    try:
        assert query(conn, "SELECT run_id, status, pipeline_name FROM runs") == [(run_id, "SUCCESS", "bootstrap")]
        tags = dict(query(conn, "SELECT key, value FROM run_tags WHERE run_id = %s", [run_id]))
        assert tags["dagster/asset_partition_range_start"] == FIRST[0]
        assert tags["dagster/asset_partition_range_end"] == FIRST[1]

        materialized = query(
            conn,
            "SELECT asset_key, partition, count(*) FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY 1, 2",
            [run_id],
        )
        expected = {(key, day, 1) for key in partitioned for day in days(*FIRST)}
        expected |= {(key, None, 1) for key in unpartitioned}
        assert set(materialized) == expected
        # ... and the asset catalogue (asset_keys) knows every asset of the job.
        catalogue = {row[0] for row in query(conn, "SELECT asset_key FROM asset_keys")}
        assert partitioned | unpartitioned <= catalogue

        evaluated = query(
            conn,
            "SELECT asset_key, check_name, execution_status FROM asset_check_executions "
            "WHERE run_id = %s AND execution_status IN ('SUCCEEDED', 'FAILED')",
            [run_id],
        )
        assert {(asset, name) for asset, name, _ in evaluated} == checks
        assert len(evaluated) == len(checks)
        failed = {(asset, name) for asset, name, status in evaluated if status == "FAILED"}
        assert failed == cli_failed_checks(done.stdout)
        assert f"checks: {len(checks) - len(failed)} passed, {len(failed)} failed" in done.stdout
    finally:
        conn.close()
    # The instance really is the PostgreSQL one: no SQLite storage was created under DAGSTER_HOME.
    assert not (env.dagster_home / "storage" / "runs.db").exists()
    assert not list(env.dagster_home.rglob("*.db"))


def test_dagster_instance_get_reads_the_run_back_from_postgres(
    pg: PgServer, pg_bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    env, done, _ = pg_bootstrap
    run_id = cli_run_id(done.stdout)
    partitioned, unpartitioned, checks, _ = bootstrap_job_facts()
    for name in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, env.env[name])
    monkeypatch.setenv("DAGSTER_PG_DB", env.env["DAGSTER_PG_DB"])
    assert os.environ["DAGSTER_HOME"] != str(REPO_ROOT)
    instance = dg.DagsterInstance.get()
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS and run.job_name == "bootstrap"
        for key in partitioned:
            asset_key = dg.AssetKey(json.loads(key))
            assert instance.get_materialized_partitions(asset_key) == set(days(*FIRST)), key
        for key in unpartitioned:
            latest = instance.get_latest_materialization_event(dg.AssetKey(json.loads(key)))
            assert latest is not None and latest.run_id == run_id, key
        failed = set()
        for asset, name in checks:
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey(json.loads(asset)), name)]
            )
            (execution,) = record.values()
            assert execution.run_id == run_id
            assert execution.status.value in ("SUCCEEDED", "FAILED"), (asset, name, execution.status)
            if execution.status.value == "FAILED":
                failed.add((asset, name))
        assert failed == cli_failed_checks(done.stdout)
        # The pool limit reached PostgreSQL: the `duckdb` pool admits one step at a time.
        assert instance.event_log_storage.get_concurrency_info("duckdb").slot_count == 1
    finally:
        instance.dispose()


def test_the_password_never_appears_in_cli_output(pg: PgServer, pg_bootstrap, tmp_path: Path) -> None:
    """The role's password (random, with URL-special characters) is used, yet printed nowhere: not on success,
    not when the server cannot be reached (where connection strings usually leak)."""
    env, done, _ = pg_bootstrap
    secrets_shown = (pg.password, quote(pg.password), pg.token)
    assert not any(s in done.stdout + done.stderr for s in secrets_shown)

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind((PG_HOST, 0))
        closed_port = probe.getsockname()[1]
    failed = env.run(
        "bootstrap",
        "--start",
        FIRST[0],
        "--end",
        FIRST[0],
        timeout=300,
        DAGSTER_PG_PORT=str(closed_port),
        CRYPTO_ASSETS_DUCKDB=str(tmp_path / "unused.duckdb"),
    )
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"port {closed_port} failed" in output  # it did try this server and said so
    assert not any(s in output for s in secrets_shown)


# ------------------------------------------------------------------------------------ concurrency


def step_intervals(
    conn: psycopg2.extensions.connection, run_id: str, steps: set[str]
) -> list[tuple[datetime, datetime]]:
    rows = query(
        conn,
        "SELECT step_key, dagster_event_type, timestamp FROM event_logs WHERE run_id = %s "
        "AND dagster_event_type IN ('STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE') ORDER BY id",
        [run_id],
    )
    starts = {step: ts for step, kind, ts in rows if kind == "STEP_START" and step in steps}
    ends = {step: ts for step, kind, ts in rows if kind != "STEP_START" and step in steps}
    assert starts.keys() == ends.keys() == steps, (run_id, sorted(steps - starts.keys()))
    return [(starts[step], ends[step]) for step in steps]


def initialise_instance(env: PipelineEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create the instance's tables once, as a deployment does (`dagster instance migrate`) before starting
    processes: two processes creating the schema at the same moment race (dagster-postgres retries that)."""
    import dagster as dg

    with monkeypatch.context() as patch:
        for name, value in env.env.items():
            if name.startswith("DAGSTER_"):
                patch.setenv(name, value)
        dg.DagsterInstance.get().dispose()


def test_two_concurrent_cli_bootstraps_share_the_warehouse_one_step_at_a_time(
    pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `crypto-assets bootstrap` processes started together on adjacent day ranges. Their runs are in-process
    (the run queue never sees them): the `duckdb` pool, claimed in PostgreSQL, is what serialises their writes.

    A 3-day run takes ~1.5 s here, less than the two processes' start-up can differ by, so the replay server
    answers every request 0.4 s late (its "slow" fault, well inside the clients' 20 s read timeout): each run
    then lasts several seconds and the two overlap whatever the machine's speed."""
    db = pg.create_database()
    with ReplayServer() as server:
        server.set_faults(FaultConfig(rate=1.0, kinds=["slow"], slow_seconds=0.4))
        env = pg_pipeline_env(tmp_path, server, pg, db)
        initialise_instance(env, monkeypatch)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "crypto_assets", "bootstrap", "--start", first, "--end", last],
                env=env.env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for first, last in (FIRST, SECOND)
        ]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-4000:]
        assert not any(s in output for s in (pg.password, quote(pg.password), pg.token))
    run_ids = [cli_run_id(output) for output in outputs]

    _, _, _, pool_steps = bootstrap_job_facts()
    conn = pg.connect(db)
    try:
        rows = query(conn, "SELECT run_id, pipeline_name, status, start_time, end_time FROM runs")
        assert all(status == "SUCCESS" for _, _, status, _, _ in rows)
        runs = {run_id: (status, start, end) for run_id, job, status, start, end in rows if job == "bootstrap"}
        assert set(runs) == set(run_ids)
        # The bootstrap of the older range that ends last recomputes the newer days its look-back reaches.
        assert {job for _, job, _, _, _ in rows} <= {"bootstrap", "recompute_lookback"}
        (_, start_a, end_a), (_, start_b, end_b) = (runs[run_id] for run_id in run_ids)
        assert start_a < end_b and start_b < end_a, "the two runs did not overlap in time: nothing was tested"

        a, b = (step_intervals(conn, run_id, pool_steps) for run_id in run_ids)
        overlapping = [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1]]
        assert not overlapping, f"steps of the duckdb pool ran at the same time in both runs: {overlapping[:3]}"
        blocked = query(
            conn,
            "SELECT count(*) FROM event_logs WHERE run_id = ANY(%s) AND dagster_event_type = 'ENGINE_EVENT' "
            "AND event LIKE '%%blocked by limit for pool duckdb%%'",
            [run_ids],
        )[0][0]
        assert blocked > 0, "no step ever waited for the duckdb pool: the runs did not contend"
        assert query(conn, "SELECT count(*) FROM concurrency_slots WHERE run_id IS NOT NULL") == [(0,)]
    finally:
        conn.close()
    assert_warehouse_holds_exactly(env.duckdb_path, [FIRST, SECOND])


# ------------------------------------------------------------------------ the queue and the daemon


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Background processes started by a test (each in its own process group), stopped at the end."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_runs_submitted_to_the_queue_run_one_at_a_time_through_the_daemon(
    pg: PgServer,
    replay_server: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    processes: list[subprocess.Popen],
) -> None:
    """The deployment's layout: a user-code gRPC server, `dagster job launch` submitting two bootstrap runs (they
    stay QUEUED), then `dagster-daemon run` dequeuing them one at a time (`max_concurrent_runs: 1`)."""
    db = pg.create_database()
    env = pg_pipeline_env(tmp_path, replay_server, pg, db)
    # The deployment's queue, ticking every second instead of Dagster's default 5 s: the first run (a few
    # seconds, most of it its worker process starting) must still be in progress when the daemon next looks
    # at the queue, or the limit is never what holds the second run back and its log line cannot appear.
    with (Path(env.env["DAGSTER_HOME"]) / "dagster.yaml").open("a") as config:
        config.write(
            "\nrun_coordinator:\n  module: dagster\n  class: QueuedRunCoordinator\n"
            "  config:\n    dequeue_interval_seconds: 1\n"
        )
    initialise_instance(env, monkeypatch)
    port = free_port()

    def background(name: str, *args: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("w")
        proc = subprocess.Popen(
            args, env=env.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        processes.append(proc)
        return proc

    def log_tail(name: str) -> str:
        return (tmp_path / f"{name}.log").read_text()[-3000:]

    grpc = background(
        "grpc",
        str(BIN / "dagster"),
        "api",
        "grpc",
        "-m",
        "crypto_assets.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    )
    deadline = time.monotonic() + 180
    while True:
        assert grpc.poll() is None, f"the gRPC code server exited:\n{log_tail('grpc')}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, f"the gRPC code server did not listen within 180 s:\n{log_tail('grpc')}"
        time.sleep(0.5)

    for first, last in (FIRST, SECOND):
        launched = subprocess.run(
            [
                *(str(BIN / "dagster"), "job", "launch", "--grpc-host", "127.0.0.1", "--grpc-port", str(port)),
                *("-j", "bootstrap", "--tags"),
                json.dumps({"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}),
            ],
            env=env.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert launched.returncode == 0, launched.stdout[-2000:] + launched.stderr[-2000:]
    conn = pg.connect(db)
    try:
        queued = query(conn, "SELECT run_id, status FROM runs ORDER BY create_timestamp")
        assert [status for _, status in queued] == ["QUEUED", "QUEUED"]  # nothing runs them without the daemon
        run_ids = [run_id for run_id, _ in queued]

        daemon = background(
            "daemon", str(BIN / "dagster-daemon"), "run", "--grpc-host", "127.0.0.1", "--grpc-port", str(port)
        )
        deadline = time.monotonic() + 480
        while True:
            runs = {
                run_id: (status, start, end)
                for run_id, status, start, end in query(conn, "SELECT run_id, status, start_time, end_time FROM runs")
            }
            if all(runs[run_id][0] in FINISHED for run_id in run_ids):
                break
            assert daemon.poll() is None, f"dagster-daemon exited:\n{log_tail('daemon')}"
            assert time.monotonic() < deadline, f"runs not finished within 480 s: {runs}\n{log_tail('daemon')}"
            time.sleep(1)
    finally:
        conn.close()
    (status_a, _, end_a), (status_b, start_b, _) = (runs[run_id] for run_id in run_ids)
    assert (status_a, status_b) == ("SUCCESS", "SUCCESS"), log_tail("daemon")
    assert start_b >= end_a, "the queue started the second run before the first one ended"
    # While the first run was in progress the daemon held the second one back because of the limit.
    assert "1 runs are currently in progress. Maximum is 1" in (tmp_path / "daemon.log").read_text()
    assert_warehouse_holds_exactly(env.duckdb_path, [FIRST, SECOND])


def test_prune_old_runs_deletes_superseded_runs_from_postgres(
    pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The housekeeping job on deploy/postgres/dagster.yaml: event-log storage ids are not sharded here (they are
    on SQLite), and the job still keeps exactly the runs that hold a partition's latest materialization."""
    import dagster as dg

    from crypto_assets_tests.test_housekeeping import DAILY, PAUSE_S, chore, daily, prune

    for name, value in pg.env(pg.create_database()).items():
        monkeypatch.setenv(name, value)
    shutil.copy(DEPLOY_YAML, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        whole_range = dg.materialize(
            [daily],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2024-01-01",
                "dagster/asset_partition_range_end": "2024-01-03",
            },
        ).run_id
        superseded = dg.materialize([daily], instance=instance, partition_key="2024-01-02").run_id
        latest = dg.materialize([daily], instance=instance, partition_key="2024-01-02").run_id
        chores = {chore.execute_in_process(instance=instance).run_id for _ in range(2)}
        time.sleep(PAUSE_S)
        result = prune(instance, older_than_s=PAUSE_S / 2)
        assert result.success and result.output_for_node("delete_old_runs") == 3
        assert {run.run_id for run in instance.get_runs()} == {whole_range, latest, result.run_id}
        assert instance.get_materialized_partitions(DAILY) == {"2024-01-01", "2024-01-02", "2024-01-03"}
        for run_id in (superseded, *chores):
            assert instance.all_logs(run_id) == []
