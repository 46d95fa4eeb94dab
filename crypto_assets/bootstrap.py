"""Run the bootstrap backfill as one Dagster run on the instance at DAGSTER_HOME, and summarise it."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from crypto_assets import warehouse as wh
from crypto_assets.config import REPO_ROOT, Settings
from crypto_assets.errors import ConfigError
from crypto_assets.http import UNRESOLVED_HOST
from crypto_assets.schemas import TABLE_MODELS
from crypto_assets.transforms import quality as q

# Every warehouse table, in pipeline order: the pandera model registry is the one list of tables.
SUMMARY_TABLES = tuple(TABLE_MODELS)
# A failed step's message is cut here in the summary; the run's logs and the UI keep it whole.
FAILURE_CHARS = 2000


def check_warehouse_openable(path: Path, echo: Callable[[str], None]) -> None:
    """Fail fast (ConfigError, exit 2) on an unwritable folder or a file that is not a DuckDB database.

    A file locked by another writer is fine: the run's steps wait for it (and for the `duckdb` pool). A file that
    did not exist is removed again after the trial, so a start refused later (the pre-flight) leaves nothing.
    """
    existed = path.exists()
    try:
        with wh.connect(path, lock_timeout_s=2):
            pass
        if not existed:
            path.unlink(missing_ok=True)
            Path(f"{path}.wal").unlink(missing_ok=True)
    except wh.WarehouseLocked:
        echo("  the warehouse is in use by another process: this run's steps will wait for it")


def _open_instance(home: Path) -> dg.DagsterInstance:
    try:
        return dg.DagsterInstance.get()
    except Exception as exc:  # storage unreachable, bad dagster.yaml, missing env var: a config problem
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot open the Dagster instance at {home}/dagster.yaml: {first_line} "
            "(check DAGSTER_HOME and, for PostgreSQL, DAGSTER_PG_HOST/PORT/USER/DB)"
        ) from None


def _ui_hint(home: Path) -> str:
    if home == REPO_ROOT:
        return "make ui"
    if home == REPO_ROOT / "deploy" / "postgres":
        return "make ui-postgres"
    return f"DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml"


def _check_results(result: dg.ExecuteInProcessResult) -> list[tuple[str, str, bool, str, str]]:
    return [
        (
            evaluation.asset_key.to_user_string(),
            evaluation.check_name,
            evaluation.passed,
            evaluation.severity.value,
            evaluation.description or "",
        )
        for evaluation in result.get_asset_check_evaluations()
    ]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_abandoned_runs(instance: dg.DagsterInstance, echo: Callable[[str], None]) -> list[str]:
    """Mark bootstrap runs whose process died (e.g. kill -9) as failed and free their pool slots.

    The bootstrap executes in this process, so no run launcher watches it; a killed process would leave
    its run STARTED forever and keep the `duckdb` pool slot, blocking every later run.
    """
    recovered = []
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={"crypto_assets/host": socket.gethostname()},
        )
    )
    for run in runs:
        pid = int(run.tags.get("crypto_assets/pid", "0"))
        if pid and not _process_alive(pid):
            instance.report_run_failed(run, message=f"the bootstrap process {pid} died without finishing the run")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            recovered.append(run.run_id)
            echo(f"  marked abandoned run {run.run_id} (process {pid} is gone) as failed and freed its pool slot")
    return recovered


def _root_cause(failure: dg.DagsterEvent) -> str:
    """What made a step fail, from its STEP_FAILURE event.

    A ``dg.Failure`` is an asset saying what went wrong: its description. Any other exception is reported as
    Dagster recorded it: Dagster's error around the user's code is skipped (its cause is the user's exception),
    then the exception's message and those of its causes.
    """
    data = failure.step_failure_data
    if data.user_failure_data is not None:
        message = data.user_failure_data.description or "dg.Failure without a description (see the run's logs)"
    elif data.error is None:
        message = "no error recorded (see the run's logs)"
    else:
        error = data.error.cause or data.error
        messages = [error.message.strip()]
        while error.cause is not None:
            error = error.cause
            messages.append(error.message.strip())
        message = "; caused by: ".join(messages)
    return message.strip().replace("\n", " | ")


def _next_step(failures: Sequence[str]) -> str:
    """What to do after a failed run, from its failed steps' messages."""
    if any(UNRESOLVED_HOST in failure for failure in failures):
        return (
            "next: provider host names do not resolve: this machine looks offline or needs a proxy (HTTPS_PROXY); "
            "`crypto-assets demo` runs on the bundled real data without a network"
        )
    return "next: what landed is kept; fix the cause above and run the same command again (days are rewritten in place)"


def _coverage(
    conn: duckdb.DuckDBPyConnection, start: date, end: date, symbols: Sequence[str], echo: Callable[[str], None]
) -> list[str]:
    """Print what the providers gave per symbol and which days no news provider covered; return the problems
    that fail the command (a symbol with no bar at all, failed symbol-days)."""
    coverage = wh.read_window(
        conn, "raw.price_coverage", time_column="day", start=start, end=end + timedelta(days=1), symbols=symbols
    )
    facts, problems = q.price_coverage_report(coverage, start, end, symbols)
    statuses = coverage["status"].value_counts().to_dict()
    echo(
        f"prices: {len(coverage)} symbol-days: "
        + ", ".join(f"{statuses.get(s, 0)} {s}" for s in ("complete", "partial", "no_data", "failed"))
    )
    for line in [*facts, *problems]:
        echo(f"  {line}")
    window = (datetime.combine(start, time(0), UTC), datetime.combine(end + timedelta(days=1), time(0), UTC))
    news = wh.read_window(conn, "raw.news_coverage", time_column="window_start", start=window[0], end=window[1])
    news_result = q.news_coverage_by_day(news, *window, datetime.now(UTC))
    echo(f"news: {news_result.description}")
    return problems


def _summarise(conn: duckdb.DuckDBPyConnection, echo: Callable[[str], None]) -> int:
    """Print the rows per table and the training set's splits; return the training set's row count."""
    counts: dict[str, int] = {}
    echo("rows per table:")
    for table in SUMMARY_TABLES:
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if wh.table_exists(conn, table) else 0
        counts[table] = count
        echo(f"  {table:<32} {count:>9,}")
    if wh.table_exists(conn, "ml.training_set"):
        splits = conn.execute(
            "SELECT split, count(*), min(ts), max(ts) FROM ml.training_set GROUP BY split ORDER BY min(ts)"
        ).fetchall()
        columns = len(conn.execute("SELECT * FROM ml.training_set LIMIT 0").description)
        echo("training set (rows x columns per split):")
        for split, count, first, last in splits:
            echo(f"  {split:<6} {count:>7,} x {columns}   {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC")
    return counts["ml.training_set"]


def _range_tags(start: date, end: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def _later_built_days(path: Path, end: date, symbols: Sequence[str]) -> tuple[date, date] | None:
    """The days after ``end`` (within the indicators' look-back) that already hold bars: their features read the
    days just built, so they are recomputed."""
    from crypto_assets.defs.features import INDICATOR_LOOKBACK_DAYS

    horizon = end + timedelta(days=INDICATOR_LOOKBACK_DAYS)
    with wh.connect(path, read_only=True) as conn:
        if not wh.table_exists(conn, "raw.prices"):
            return None
        first, last = conn.execute(
            "SELECT min(CAST(ts AS DATE)), max(CAST(ts AS DATE)) FROM raw.prices "
            "WHERE ts >= ? AND ts < ? AND symbol IN (SELECT unnest(?))",
            [
                datetime.combine(end + timedelta(days=1), time(0), UTC),
                datetime.combine(horizon + timedelta(days=1), time(0), UTC),
                list(symbols),
            ],
        ).fetchone()
    return (first, last) if first is not None else None


def run_bootstrap(
    start: date,
    end: date,
    symbols: Sequence[str],
    settings: Settings,
    dagster_home: Path,
    *,
    echo: Callable[[str], None] = print,
) -> int:
    from crypto_assets.definitions import defs

    days = (end - start).days + 1
    echo(f"bootstrap: {days} UTC days {start} .. {end}, symbols {','.join(symbols)}")
    echo(f"  warehouse  {settings.duckdb_path}")
    echo(f"  instance   {dagster_home}/dagster.yaml")
    echo(f"  prices     {' -> '.join(settings.price_providers)}   news {', '.join(settings.news_providers)}")
    with _open_instance(dagster_home) as instance:  # disposed: its storages closed before the summary
        recover_abandoned_runs(instance, echo)
        tags = {
            "crypto_assets/command": "bootstrap",
            "crypto_assets/host": socket.gethostname(),
            "crypto_assets/pid": str(os.getpid()),
            # Run monitoring may cap run time; a long backfill must not be cancelled while it writes.
            "dagster/max_runtime": str(3600 + 120 * days),
        }
        run_config = {
            "resources": {"universe": {"config": {"symbols": list(symbols)}}},
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        }
        result = defs.resolve_job_def("bootstrap").execute_in_process(
            instance=instance,
            tags={**_range_tags(start, end), **tags},
            run_config=run_config,
            raise_on_error=False,
        )
        later = _later_built_days(settings.duckdb_path, end, symbols) if result.success else None
        if later is not None:
            echo(f"recomputing {later[0]} .. {later[1]}: built before, their look-back reaches the days just built")
            followup = defs.resolve_job_def("recompute_lookback").execute_in_process(
                instance=instance, tags={**_range_tags(*later), **tags}, run_config=run_config, raise_on_error=False
            )
            if not followup.success:
                result = followup  # its failure is the one to report
    echo("")
    echo(f"run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
    failures = [(event.step_key, _root_cause(event)) for event in result.all_events if event.is_step_failure]
    for step_key, cause in failures:
        echo(f"  failed step {step_key}: {cause[:FAILURE_CHARS]}{'...' if len(cause) > FAILURE_CHARS else ''}")
    checks = _check_results(result)
    failed_checks = [c for c in checks if not c[2]]
    failed_errors = [c for c in failed_checks if c[3] == "ERROR"]
    echo(
        f"checks: {len(checks) - len(failed_checks)} passed, {len(failed_checks)} failed "
        f"({len(failed_errors)} errors, {len(failed_checks) - len(failed_errors)} warnings)"
    )
    for asset, name, _, severity, description in failed_checks:
        echo(f"  {'FAILED' if severity == 'ERROR' else 'warning'} {asset} {name}: {description}")
    try:
        # Read-write: the coverage tables are created (empty) when a failed run never wrote them.
        with wh.connect(settings.duckdb_path) as conn:
            training_rows = _summarise(conn, echo)
            coverage_problems = _coverage(conn, start, end, symbols, echo)
    except wh.WarehouseLocked as exc:
        echo(f"no summary of the warehouse: {exc}")
        training_rows, coverage_problems = 0, [str(exc)]
    echo(f"DuckDB file: {settings.duckdb_path}")
    if training_rows:
        echo("load it:     from crypto_assets import load_training_table; df = load_training_table()")
    echo(f"open the UI: {_ui_hint(dagster_home)}   (then http://127.0.0.1:3000: assets, lineage, this run)")
    if result.success and not failed_errors and not coverage_problems:
        return 0
    if failures or failed_errors:
        echo(_next_step([cause for _, cause in failures]))
    return 1
