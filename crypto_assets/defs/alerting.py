"""Sensors that turn failures into alerts: failed runs, failed blocking or data-freshness checks, failed freshness."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from crypto_assets.alerts import send_alert

RUN_SLACK = timedelta(hours=6)
# Dagster 1.13 does not export the enum of freshness states; it is a `str` enum whose values are the states'
# names (PASS, WARN, FAIL, UNKNOWN, NOT_APPLICABLE), so a state compares equal to its name.
FRESHNESS_FAIL = "FAIL"
ALERTED_EVENTS = (
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.FRESHNESS_STATE_CHANGE,
)


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (log line + CRYPTO_ASSETS_ALERT_WEBHOOK) when any run fails.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    tags = run.tags
    partitions = tags.get("dagster/partition") or "{}..{}".format(
        tags.get("dagster/asset_partition_range_start", ""), tags.get("dagster/asset_partition_range_end", "")
    )
    send_alert(
        "run failed",
        f"{run.job_name} {run.run_id[:8]}",
        {"run_id": run.run_id, "partitions": partitions, "error": (context.failure_event.message or "")[:500]},
    )


def alert_for(event: dg.EventLogEntry) -> tuple[str, str, dict[str, str]] | None:
    """The alert an event deserves, or None: failed ERROR checks, failed data-freshness checks, freshness FAIL."""
    dagster_event = event.dagster_event
    if dagster_event is None:
        return None
    if dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = dagster_event.event_specific_data
        is_blocking = evaluation.severity == dg.AssetCheckSeverity.ERROR
        if evaluation.passed or not (is_blocking or evaluation.check_name.endswith("data_freshness")):
            return None
        return (
            "check failed",
            f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}",
            {
                "severity": evaluation.severity.value,
                "run_id": event.run_id,
                "description": evaluation.description or "",
            },
        )
    if dagster_event.event_type == dg.DagsterEventType.FRESHNESS_STATE_CHANGE:
        change = dagster_event.asset_freshness_state_change_data
        if change.new_state != FRESHNESS_FAIL:
            return None
        return (
            "freshness failed",
            change.key.to_user_string(),
            {"previous_state": change.previous_state.value, "new_state": change.new_state.value},
        )
    return None


def _after(cursor: dict[str, float]) -> dg.RunShardedEventsCursor:
    # SQLite keeps one event log per run: the cursor must also say which runs to look in (those updated
    # since the last tick, with slack for runs that were still going).
    since = datetime.fromtimestamp(cursor["checked_at"], UTC) - RUN_SLACK
    return dg.RunShardedEventsCursor(id=int(cursor["storage_id"]), run_updated_after=since.replace(tzinfo=None))


@dg.sensor(
    name="alert_on_failed_checks",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Alerts on failed blocking checks, failed data-freshness checks and freshness policies turning FAIL.",
)
def alert_on_failed_checks(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    now = datetime.now(UTC).timestamp()
    if not context.cursor:  # first evaluation: start from now, do not replay history
        latest = [
            record.storage_id
            for event_type in ALERTED_EVENTS
            for record in context.instance.get_event_records(
                dg.EventRecordsFilter(event_type=event_type), ascending=False, limit=1
            )
        ]
        context.update_cursor(json.dumps({"storage_id": max(latest, default=0), "checked_at": now}))
        return dg.SkipReason("started watching check and freshness events")
    cursor = json.loads(context.cursor)
    newest, sent = int(cursor["storage_id"]), 0
    for event_type in ALERTED_EVENTS:
        records = context.instance.get_event_records(
            dg.EventRecordsFilter(event_type=event_type, after_cursor=_after(cursor)), ascending=True, limit=500
        )
        for record in records:
            newest = max(newest, record.storage_id)
            alert = alert_for(record.event_log_entry)
            if alert is not None:
                send_alert(*alert)
                sent += 1
    context.update_cursor(json.dumps({"storage_id": newest, "checked_at": now}))
    return dg.SkipReason(f"{sent} alerts sent")
