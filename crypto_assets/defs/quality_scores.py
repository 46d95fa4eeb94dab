"""quality/partition_scores: a 0-100 quality score per daily partition, for trends in the UI and in SQL."""

from datetime import UTC, date, datetime

import dagster as dg
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import PARTITIONED, days_of, preview, row_count, table_metadata
from crypto_assets.defs.prices import RAW_PRICES, second_provider_sample
from crypto_assets.defs.resources import PriceSources, Universe, Warehouse
from crypto_assets.schemas import ALL_SYMBOLS, validate_frame
from crypto_assets.transforms.quality import partition_score_rows

PARTITION_SCORES = dg.AssetKey(["quality", "partition_scores"])


def score_days(
    prices: pd.DataFrame, days: list[date], symbols: list[str], sample: pd.DataFrame, sample_day: date | None
) -> pd.DataFrame:
    """quality.partition_scores rows for each day: completeness, consistency, accuracy and overall (0-100)."""
    now = datetime.now(UTC)
    by_day = dict(tuple(prices.groupby(prices["ts"].dt.date))) if not prices.empty else {}
    return pd.concat(
        [
            partition_score_rows(
                by_day.get(day, prices.iloc[:0]),
                partition_key=day.isoformat(),
                symbols=symbols,
                now=now,
                secondary=sample if day == sample_day else None,
            )
            for day in days
        ],
        ignore_index=True,
    )


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
    **PARTITIONED,
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
    scores = validate_frame("quality.partition_scores", score_days(prices, days, universe.symbols, sample, sample_day))
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
    metadata = {
        **row_count(context, len(scores)),
        "quality_score": _mean(overall["overall_score"]),
        "completeness_score": _mean(overall["completeness_score"]),
        "consistency_score": _mean(overall["consistency_score"]),
        "accuracy_score": _mean(overall["accuracy_score"]),
        "accuracy_sample": f"{sample_day} from {', '.join(sorted(set(sample['provider'])))}"
        if not sample.empty
        else "none: no second provider answered",
        "lowest_days": preview(overall.nsmallest(5, "overall_score")[["partition_key", "overall_score"]]),
    }
    return dg.MaterializeResult(metadata={key: value for key, value in metadata.items() if value is not None})
