"""Jobs and schedules: the one-run bootstrap backfill and the hourly refresh that keeps data current.

Every job runs its steps in one process (see ``runtime.py``).

Why schedules of a partitioned job rather than declarative automation: the refresh must re-fetch the
*current* day's partition every hour (the partition grows bar by bar), and finalise *yesterday's*
partition once its last bar has closed. A schedule names exactly which partition each tick writes, is
testable with ``build_schedule_context``, and runs the whole chain (prices, news, features, training
set) in one run that takes the warehouse pool once. Both schedules start RUNNING.
"""

from datetime import datetime, timedelta

import dagster as dg

from crypto_assets.defs.features import FEATURE_VECTORS, INDICATOR_LOOKBACK_DAYS, TECHNICAL_INDICATORS
from crypto_assets.defs.ml import TRAINING_SET
from crypto_assets.defs.news import SENTIMENT_HOURLY

EVERY_ASSET = dg.AssetSelection.all()

bootstrap_job = dg.define_asset_job(
    name="bootstrap",
    selection=EVERY_ASSET,
    description=(
        "Every asset over a range of UTC days in ONE run (all partitioned assets use a single-run backfill "
        "policy), then the training set. Launched by `crypto-assets bootstrap`."
    ),
)

# The assets whose partitions read earlier days (TimeWindowPartitionMappings): after older days are built,
# their newer partitions within that look-back are recomputed, so any build order ends with one full build's
# tables (features.md, "order independence"). `crypto-assets bootstrap` runs it; see docs/quality.md.
lookback_job = dg.define_asset_job(
    name="recompute_lookback",
    selection=dg.AssetSelection.assets(TECHNICAL_INDICATORS, SENTIMENT_HOURLY, FEATURE_VECTORS, TRAINING_SET),
    description=(
        f"Recompute the partitions whose look-back ({INDICATOR_LOOKBACK_DAYS} days for indicators, 1 day for "
        "24-hour windows) reaches newly built older days, then the training set. Launched by `crypto-assets "
        "bootstrap` after a backfill of days older than ones already built."
    ),
)

refresh_job = dg.define_asset_job(
    name="refresh_day",
    selection=EVERY_ASSET,
    description="Re-fetch one UTC day of prices and news, recompute its features and rebuild the training set.",
)


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


@dg.schedule(
    job=refresh_job,
    cron_schedule="5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Five minutes after every hour: refresh the current UTC day's partition (the bar that just closed).",
)
def hourly_refresh(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time
    day = _day(tick - timedelta(hours=1))  # at 00:05 the bar that just closed is yesterday's 23:00 bar
    return dg.RunRequest(run_key=f"hourly-{tick:%Y-%m-%dT%H}", partition_key=day)


@dg.schedule(
    job=refresh_job,
    cron_schedule="20 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:20 UTC: final refresh of yesterday's partition, once late provider corrections have landed.",
)
def daily_finalize(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"final-{_day(tick - timedelta(days=1))}", partition_key=_day(tick - timedelta(days=1))
    )
