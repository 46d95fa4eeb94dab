"""The prune_old_runs job against real runs on a temporary SQLite instance.

Dagster's public API cannot backdate a run, so the tests make runs "old" by time: a first batch, a pause,
then a second batch, and a retention that puts the cutoff in the pause (``retention_days`` is a float).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.config import run_retention_days
from crypto_assets.defs.housekeeping import prune_old_runs, prune_old_runs_daily
from crypto_assets.errors import ConfigError

PAUSE_S = 1.5
DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")
DAILY = dg.AssetKey("daily")


@dg.op
def succeed() -> None:
    pass


@dg.job
def chore() -> None:
    succeed()


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def finished_runs(instance: dg.DagsterInstance) -> dict[str, str]:
    """Three finished runs of every kind, plus one never started: {run_id: status}."""
    ok = chore.execute_in_process(instance=instance).run_id
    failed = instance.create_run_for_job(chore)
    instance.report_run_failed(failed, message="for the test")
    canceled = instance.create_run_for_job(chore)
    instance.report_run_canceled(canceled, message="for the test")
    return {ok: "SUCCESS", failed.run_id: "FAILURE", canceled.run_id: "CANCELED"}


def prune(instance: dg.DagsterInstance, older_than_s: float, **config: object) -> dg.ExecuteInProcessResult:
    """Run the job with the cutoff ``older_than_s`` seconds before now."""
    run_config = {"ops": {"delete_old_runs": {"config": {"retention_days": older_than_s / 86400, **config}}}}
    result = prune_old_runs.execute_in_process(instance=instance, run_config=run_config)
    assert result.success
    return result


def log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id) if entry.dagster_event is None]


def test_old_finished_runs_are_deleted_new_and_unfinished_ones_kept(instance: dg.DagsterInstance) -> None:
    old = finished_runs(instance)
    unfinished_old = {
        instance.create_run_for_job(chore, status=status).run_id
        for status in (
            dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.CANCELING,
        )
    }
    time.sleep(PAUSE_S)
    pause = time.time()
    time.sleep(PAUSE_S)
    new = finished_runs(instance)

    result = prune(instance, older_than_s=time.time() - pause)

    remaining = {run.run_id: run.status.value for run in instance.get_runs()}
    assert set(remaining) == {*new, *unfinished_old, result.run_id}
    assert result.output_for_node("delete_old_runs") == 3
    for run_id in old:  # the event log went with the run
        assert instance.all_logs(run_id) == []
    lines = log_lines(instance, result.run_id)
    for run_id, status in old.items():
        assert f"deleted run {run_id} (chore, {status})" in lines
    assert any(line.startswith("deleted 3 finished runs last updated before") for line in lines)


def test_compute_logs_of_a_deleted_run_are_deleted(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    run_id = chore.execute_in_process(instance=instance).run_id
    logs = tmp_path / "storage" / run_id
    assert logs.is_dir()  # the steps' captured stdout/stderr
    time.sleep(0.5)
    prune(instance, older_than_s=0.25)
    assert instance.get_run_by_id(run_id) is None and not logs.exists()


def test_a_run_holding_the_latest_materialization_of_a_partition_is_kept(instance: dg.DagsterInstance) -> None:
    whole_range = dg.materialize(
        [daily],
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-03"},
    ).run_id
    dg.materialize([daily], instance=instance, partition_key="2024-01-02")  # superseded by the next run
    latest = dg.materialize([daily], instance=instance, partition_key="2024-01-02").run_id
    time.sleep(PAUSE_S)

    result = prune(instance, older_than_s=PAUSE_S / 2)
    assert {run.run_id for run in instance.get_runs()} == {whole_range, latest, result.run_id}
    assert instance.get_materialized_partitions(DAILY) == {"2024-01-01", "2024-01-02", "2024-01-03"}
    assert result.output_for_node("delete_old_runs") == 1
    assert any("kept 2 older ones" in line for line in log_lines(instance, result.run_id))

    every = prune(instance, older_than_s=PAUSE_S / 2, keep_latest_materializations=False)
    assert {run.run_id for run in instance.get_runs()} == {result.run_id, every.run_id}  # both recent


def test_the_schedule_runs_daily_at_0330_utc_and_starts_running() -> None:
    assert prune_old_runs_daily.cron_schedule == "30 3 * * *"
    assert prune_old_runs_daily.execution_timezone == "UTC"
    assert prune_old_runs_daily.default_status == dg.DefaultScheduleStatus.RUNNING
    assert prune_old_runs_daily.job_name == "prune_old_runs"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 30), ("7", 7), ("365", 365)],  # 30: the default README.md and docs/deploy.md promise
)
def test_retention_days_come_from_the_environment(value: str | None, expected: int) -> None:
    env = {} if value is None else {"CRYPTO_ASSETS_RUN_RETENTION_DAYS": value}
    assert run_retention_days(env) == expected


@pytest.mark.parametrize("value", ["", "30d", "1.5", "0", "-3", "36501"])
def test_a_bad_retention_is_a_config_error_naming_the_variable_and_its_value(value: str) -> None:
    """Not a whole number and out of range get the same message: the variable, the value given, what is expected."""
    expected = f"CRYPTO_ASSETS_RUN_RETENTION_DAYS={value!r}: expected a whole number of days between 1 and 36500"
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        run_retention_days({"CRYPTO_ASSETS_RUN_RETENTION_DAYS": value})
