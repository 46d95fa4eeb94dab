"""What every asset family shares: the daily partitions, asset defaults and window helpers."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from crypto_assets.config import Settings, load_settings
from crypto_assets.schemas import dagster_table_schema

PARTITIONS_START = "2022-01-01"

# UTC days from 2022-01-01 up to and including the current (still growing) day, so the hourly
# refresh has a partition to write; the bootstrap's default range stops at the last complete day.
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1)

# Every warehouse asset and check runs in this pool, limited to one step at a time (dagster.yaml): DuckDB admits
# one writing process. Pool and backfill policy are execution properties of each asset's op, declared with it
# (Dagster 1.13's public API offers no way to set them afterwards); owners and freshness, properties of the
# asset specs, are applied to every asset once, in definitions.py.
WAREHOUSE_POOL = "duckdb"
# A backfill over any range of days is ONE run: each asset processes the whole window vectorised.
SINGLE_RUN = dg.BackfillPolicy.single_run()

OWNERS = ["team:quant-data"]
# The hourly refresh lands new bars a few minutes after each hour: two missed refreshes warn, six fail.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=6), warn_window=timedelta(hours=2))


def provider_kinds(kind: str, settings: Settings | None = None) -> set[str]:
    """The kinds of the asset that calls the ``kind`` providers: the providers this deployment is configured to call
    (``CRYPTO_ASSETS_PRICE_PROVIDERS`` / ``..._NEWS_PROVIDERS``, names from the registry). Not "duckdb" as well:
    the UI's catalog row shows every kind before the name, and five crowd the name out."""
    return set((settings or load_settings()).providers(kind))


def table_metadata(table: str) -> dict[str, object]:
    """Static asset metadata: the table's column schema (from the pandera model) and where it lives."""
    return {
        "dagster/column_schema": dagster_table_schema(table),
        "dagster/table_name": table,
    }


def days_of(start: datetime, end: datetime) -> list[date]:
    """The UTC days in [start, end)."""
    first = start.astimezone(UTC).date()
    count = (end - start) // timedelta(days=1)
    return [first + timedelta(days=i) for i in range(count)]


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def upstream_window(context: dg.AssetExecutionContext, upstream: dg.AssetKey) -> dg.TimeWindow:
    """The time window of ``upstream``'s partitions that this run's partitions depend on (via the mapping)."""
    for input_name, key in context.assets_def.keys_by_input_name.items():
        if key == upstream:
            return context.asset_partitions_time_window_for_input(input_name)
    raise KeyError(f"{context.assets_def.key.to_user_string()} does not depend on {upstream.to_user_string()}")


def preview(frame, rows: int = 5) -> dg.MetadataValue:
    """A small markdown preview of a frame for the UI."""
    if frame.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


def row_count(context: dg.AssetExecutionContext, rows: int) -> dict[str, object]:
    """Row-count metadata that stays true per partition.

    A single-run backfill records the same metadata on every partition of the run, so the rows of a
    multi-day run are reported as the run's total, not as the row count of each day.
    """
    days = len(context.partition_keys)
    if days == 1:
        return {"dagster/row_count": rows}
    return {"rows_written_by_run": rows, "partitions_in_run": days}
