"""The batching event log (crypto_assets.event_storage) stores what Dagster's own SQLite event log stores.

Real Dagster runs on two real SQLite instances, one per storage: a single-run backfill of a partitioned
asset with a check, where one partition fails and the others land, then the failed one re-run.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from crypto_assets.config import REPO_ROOT
from crypto_assets.event_storage import BatchingSqliteEventLogStorage

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-11")
BAD_DAY = "2024-01-04"
ASSET = dg.AssetKey("daily")
RANGE = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-10"}


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    keys = context.partition_keys
    if BAD_DAY in keys and len(keys) > 1 and context.run.tags.get("provider") == "down":
        for key in keys:
            if key != BAD_DAY:
                context.log_event(dg.AssetMaterialization(asset_key=ASSET, partition=key, metadata={"landed": True}))
        raise dg.Failure(f"{BAD_DAY} could not be served")
    return dg.MaterializeResult(metadata={"partitions": len(keys)})


@dg.asset_check(asset=daily)
def daily_is_fine() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def make_instance(tmp_path: Path, name: str, batching: bool) -> dg.DagsterInstance:
    """An instance in tmp_path/name from the repo's dagster.yaml, with or without its event_log_storage block."""
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    yaml = (REPO_ROOT / "dagster.yaml").read_text()
    assert "class: BatchingSqliteEventLogStorage" in yaml
    if not batching:
        yaml = yaml.split("event_log_storage:")[0] + "run_monitoring:" + yaml.split("run_monitoring:")[1]
    (home / "dagster.yaml").write_text(yaml)
    return dg.DagsterInstance.from_config(str(home))


def history(instance: dg.DagsterInstance) -> Iterator[tuple]:
    """Every stored event of every run, in order, with what the UI derives from them."""
    for run in reversed(instance.get_runs()):
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None:
                continue
            yield (
                event.event_type_value,
                event.step_key,
                event.asset_key.to_user_string() if event.asset_key else None,
                event.partition,
            )


def run_both(instance: dg.DagsterInstance) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_EVENT_BATCH_SIZE", "10000")  # what importing the storage sets, for both runs
        first = dg.materialize(
            [daily, daily_is_fine],
            instance=instance,
            tags={**RANGE, "provider": "down"},
            raise_on_error=False,
        )
        assert not first.success
        again = dg.materialize([daily, daily_is_fine], instance=instance, partition_key=BAD_DAY)
        assert again.success
        # The whole range in one run: its 10 materializations reach the storage as one batch.
        whole = dg.materialize([daily, daily_is_fine], instance=instance, tags=RANGE)
        assert whole.success


def check_history(instance: dg.DagsterInstance) -> list[tuple]:
    """The check's stored executions (one planned row per partition of a run, updated by its evaluation)."""
    run_numbers = {run.run_id: n for n, run in enumerate(reversed(instance.get_runs()))}
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(ASSET, "daily_is_fine"), limit=1000
    )
    return sorted(
        (run_numbers[r.run_id], r.partition or "", r.status.value, r.event.dagster_event_type.value) for r in records
    )


def asset_summary(instance: dg.DagsterInstance) -> tuple:
    """The asset's summary row (what the UI lists assets by) checked against the events it summarises."""
    entry = instance.get_asset_records([ASSET])[0].asset_entry
    latest = instance.fetch_materializations(ASSET, limit=1).records[0]
    planned = instance.get_latest_planned_materialization_info(ASSET)
    assert entry.last_materialization_record.storage_id == latest.storage_id
    assert entry.last_run_id == instance.get_runs(limit=1)[0].run_id == latest.run_id
    assert planned is not None and planned.run_id == latest.run_id
    return (
        entry.last_materialization_record.event_log_entry.dagster_event.partition,
        len(instance.get_runs()),
    )


def test_batching_storage_stores_what_dagster_stores(tmp_path) -> None:
    plain = make_instance(tmp_path, "plain", batching=False)
    batching = make_instance(tmp_path, "batching", batching=True)
    assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert isinstance(batching.event_log_storage, BatchingSqliteEventLogStorage)
    assert Path(batching.event_log_storage._base_dir) == tmp_path / "batching" / "history" / "runs"

    statuses = []
    for instance in (plain, batching):
        with instance:
            run_both(instance)
            statuses.append(
                (
                    list(history(instance)),
                    instance.get_status_by_partition(ASSET, DAYS.get_partition_keys(), DAYS),
                    instance.get_materialized_partitions(ASSET),
                    instance.get_latest_materialization_event(ASSET).dagster_event.partition,
                    asset_summary(instance),
                    check_history(instance),
                )
            )
    assert statuses[0] == statuses[1]
    events, status, materialized, latest, summary, checks = statuses[1]
    assert len([e for e in events if e[0] == "ASSET_MATERIALIZATION_PLANNED"]) == 21
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    assert materialized == set(DAYS.get_partition_keys()) and latest == "2024-01-10"
    assert summary == ("2024-01-10", 3)
    assert sum(1 for c in checks if c[2] == "PLANNED") == 21  # one planned row per partition of each run


def test_failed_partitions_are_marked_failed(tmp_path) -> None:
    instance = make_instance(tmp_path, "home", batching=True)
    with instance, pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_EVENT_BATCH_SIZE", "10000")
        dg.materialize(
            [daily],
            instance=instance,
            tags={**RANGE, "provider": "down"},
            raise_on_error=False,
        )
        status = instance.get_status_by_partition(ASSET, DAYS.get_partition_keys(), DAYS)
    assert status[BAD_DAY] == dg.AssetPartitionStatus.FAILED
    assert {key for key, value in status.items() if value == dg.AssetPartitionStatus.MATERIALIZED} == set(
        DAYS.get_partition_keys()
    ) - {BAD_DAY}


def test_an_existing_instance_keeps_its_history(tmp_path) -> None:
    """Switching an instance from Dagster's storage to the batching one and back reads the same files."""
    with make_instance(tmp_path, "home", batching=False) as plain:
        dg.materialize([daily], instance=plain, partition_key="2024-01-02")
    with make_instance(tmp_path, "home", batching=True) as batching:
        assert batching.get_materialized_partitions(ASSET) == {"2024-01-02"}
        dg.materialize([daily], instance=batching, partition_key="2024-01-03")
    with make_instance(tmp_path, "home", batching=False) as plain_again:
        assert plain_again.get_materialized_partitions(ASSET) == {"2024-01-02", "2024-01-03"}
        assert len(plain_again.get_runs()) == 2


def materialize_in_forked_child(
    instance: dg.DagsterInstance, partition_key: str, starts_clean: Callable[[], bool]
) -> int:
    """Fork; the child materializes ``partition_key`` if ``starts_clean()`` (none of the parent's connections).

    Returns the child's exit code: 0 done, 3 not clean or failed. The child never returns into pytest.
    """
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            if starts_clean():
                dg.materialize([daily], instance=instance, partition_key=partition_key)
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_uses_its_own_connections(tmp_path) -> None:
    """Pooled SQLite connections must not be shared across fork: the child starts with none and still writes."""
    with make_instance(tmp_path, "home", batching=True) as instance:
        dg.materialize([daily], instance=instance, partition_key="2024-01-02")
        storage = instance.event_log_storage
        assert storage._engines  # the parent keeps its databases' engines (and pooled connections)
        assert materialize_in_forked_child(instance, "2024-01-03", starts_clean=lambda: not storage._engines) == 0
        dg.materialize([daily], instance=instance, partition_key="2024-01-04")
        assert instance.get_materialized_partitions(ASSET) == {"2024-01-02", "2024-01-03", "2024-01-04"}
