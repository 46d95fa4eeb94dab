"""Instance housekeeping: a daily job deletes the finished runs that ended more than N days ago.

With the hourly refresh the instance grows ~20 MiB a day (benchmarks/README.md, soak.py), mostly the runs'
event logs. ``prune_old_runs`` deletes old runs through the public instance API: ``get_run_ids`` (finished
runs last updated before the cutoff), ``delete_run`` (the run and its event log) and the compute log
manager's ``delete_logs`` (the steps' captured stdout/stderr). Runs that are not finished (queued, starting,
running, cancelling) are never deleted.

A run's materialization events go with it. So by default a run is kept while it holds the LATEST
materialization of some asset partition (the bootstrap of a day nothing re-ran since, yesterday's final
refresh): deleting it would make that partition look never materialized to Dagster. The hourly refreshes a
later run superseded are what the job deletes. ``keep_latest_materializations: false`` deletes by age alone.

N is ``CRYPTO_ASSETS_RUN_RETENTION_DAYS`` (default 30), read when the definitions load, like every
``CRYPTO_ASSETS_*`` setting; a run launched from the UI can set ``retention_days`` itself.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from crypto_assets.config import run_retention_days

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
FETCH_SIZE = 500  # materialization records read per query


class RunRetention(dg.Config):
    retention_days: float = Field(
        default=run_retention_days(),
        gt=0,
        description="Finished runs last updated (ended) more than this many days ago are deleted "
        "(default: CRYPTO_ASSETS_RUN_RETENTION_DAYS, else 30)",
    )
    keep_latest_materializations: bool = Field(
        default=True,
        description="Keep an old run while it holds the latest materialization of an asset partition",
    )


def runs_holding_latest_materializations(instance: dg.DagsterInstance) -> set[str]:
    """The runs that recorded some asset's latest materialization, or some partition's latest one."""
    run_ids: set[str] = set()
    for record in instance.get_asset_records():
        entry = record.asset_entry
        if entry.last_materialization_record is not None:
            run_ids.add(entry.last_materialization_record.run_id)
        latest = sorted(
            instance.get_latest_storage_id_by_partition(
                entry.asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION
            ).values()
        )
        for start in range(0, len(latest), FETCH_SIZE):
            storage_ids = latest[start : start + FETCH_SIZE]
            found = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=entry.asset_key, storage_ids=storage_ids), limit=len(storage_ids)
            )
            run_ids.update(materialization.run_id for materialization in found.records)
    return run_ids


@dg.op(description="Deletes the finished runs (and their event and compute logs) that ended more than N days ago.")
def delete_old_runs(context: dg.OpExecutionContext, config: RunRetention) -> dg.Output[int]:
    instance = context.instance
    cutoff = datetime.now(UTC) - timedelta(days=config.retention_days)
    old_run_ids = instance.get_run_ids(filters=dg.RunsFilter(statuses=FINISHED, updated_before=cutoff))
    history = runs_holding_latest_materializations(instance) if config.keep_latest_materializations else set()
    deleted, kept = 0, 0
    for run_id in old_run_ids:
        if run_id in history:
            kept += 1
            continue
        run = instance.get_run_by_id(run_id)
        instance.delete_run(run_id)
        # Log keys start with the run id (ComputeLogManager.build_log_key_for_run): the run's whole folder.
        instance.compute_log_manager.delete_logs(prefix=[run_id])
        deleted += 1
        described = f"{run.job_name}, {run.status.value}" if run is not None else "already gone"
        context.log.info(f"deleted run {run_id} ({described})")
    context.log.info(
        f"deleted {deleted} finished runs last updated before {cutoff:%Y-%m-%d %H:%M} UTC; kept {kept} older "
        "ones that hold the latest materialization of an asset partition"
    )
    return dg.Output(
        deleted,
        metadata={
            "deleted_runs": deleted,
            "kept_for_asset_history": kept,
            "cutoff": cutoff.isoformat(),
            "retention_days": config.retention_days,
        },
    )


@dg.job(
    description=(
        "Instance housekeeping: deletes finished runs older than CRYPTO_ASSETS_RUN_RETENTION_DAYS (default 30) "
        "with their event and compute logs; never a run still queued or in progress, nor by default one that "
        "holds the latest materialization of an asset partition."
    ),
    tags={"crypto_assets/housekeeping": "runs"},
)
def prune_old_runs() -> None:
    delete_old_runs()


prune_old_runs_daily = dg.ScheduleDefinition(
    name="prune_old_runs_daily",
    job=prune_old_runs,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 03:30 UTC: delete finished runs older than CRYPTO_ASSETS_RUN_RETENTION_DAYS (default 30).",
)
