"""quality/partition_scores: a 0-100 quality score per daily partition, for trends in the UI and in SQL."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import (
    SINGLE_RUN,
    WAREHOUSE_POOL,
    daily_partitions,
    days_of,
    preview,
    row_count,
    table_metadata,
)
from crypto_assets.defs.prices import RAW_PRICES, second_provider_sample
from crypto_assets.defs.quality import to_check_result
from crypto_assets.defs.resources import PriceSources, Universe, Warehouse
from crypto_assets.schemas import ALL_SYMBOLS, validate_frame
from crypto_assets.transforms import quality as q

PARTITION_SCORES = dg.AssetKey(["quality", "partition_scores"])


def _mean(values: pd.Series) -> float | None:
    """The mean score, rounded; None when nothing was scored (e.g. no second-provider sample)."""
    return round(float(values.mean()), 2) if values.notna().any() else None


@dg.asset(
    key=PARTITION_SCORES,
    group_name="quality",
    kinds={"duckdb", "pandas"},
    deps=[RAW_PRICES],
    description=(
        "A quality score per daily partition of raw/prices, per symbol and overall (`symbol = '*'`), 0-100:\n\n"
        "- completeness = bars present / bars expected (24 per day; only closed hours for today)\n"
        "- consistency = bars passing the OHLC rule and not duplicated / bars received\n"
        "- accuracy = sampled bars whose close is within 1% of a second provider / sampled bars "
        "(the last day of each run is sampled; null when only one provider answered)\n"
        "- overall = 0.5 completeness + 0.3 consistency + 0.2 accuracy "
        "(without accuracy: 0.625 completeness + 0.375 consistency)\n\n"
        "Materialization metadata `quality_score` plots the trend in the UI; the table serves SQL trend queries."
    ),
    metadata={**table_metadata("quality.partition_scores"), "partition_expr": "partition_start"},
    check_specs=[
        dg.AssetCheckSpec(
            "cross_provider_accuracy",
            asset=PARTITION_SCORES,
            description=(
                "raw/prices agrees with a second provider: the sampled closes (the last day of the run) are "
                "within 1%; skipped with a reason when no second provider answers"
            ),
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
)
def partition_scores(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, price_sources: PriceSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    days = days_of(start, end)
    with warehouse.get_connection() as conn:
        prices = wh.read_window(conn, "raw.prices", time_column="ts", start=start, end=end, symbols=universe.symbols)
    present_days = sorted(set(prices["ts"].dt.date)) if not prices.empty else []
    sample_day = present_days[-1] if present_days else None
    sample = second_provider_sample(prices, price_sources.clients(), sample_day) if sample_day else prices.iloc[:0]
    scores = q.partition_scores(prices, days, symbols=universe.symbols, now=datetime.now(UTC), secondary=sample)
    scores = validate_frame("quality.partition_scores", scores)
    with warehouse.get_connection() as conn:
        wh.replace_rows(
            conn,
            "quality.partition_scores",
            scores,
            time_column="partition_start",
            windows=[(start, end)],
            scope={"symbol": [*universe.symbols, ALL_SYMBOLS]},
        )
    overall = scores[scores["symbol"] == ALL_SYMBOLS]
    second_providers = ", ".join(sorted(set(sample["provider"]))) or "none"
    metadata = {
        **row_count(context, len(scores)),
        "quality_score": _mean(overall["overall_score"]),
        "completeness_score": _mean(overall["completeness_score"]),
        "consistency_score": _mean(overall["consistency_score"]),
        "accuracy_score": _mean(overall["accuracy_score"]),
        "accuracy_sample": f"{sample_day} from {second_providers}"
        if not sample.empty
        else "none: no second provider answered",
        "lowest_days": preview(overall.nsmallest(5, "overall_score")[["partition_key", "overall_score"]]),
    }
    accuracy = q.cross_provider_accuracy(
        prices[prices["ts"].dt.date == sample_day], sample, tolerance=0.01, severity="warn"
    )
    return dg.MaterializeResult(
        metadata={key: value for key, value in metadata.items() if value is not None},
        check_results=[to_check_result(accuracy, sampled_day=str(sample_day), second_provider=second_providers)],
    )
