"""features/technical_indicators and features/feature_vectors: the 16-feature vector per hourly bar."""

import dagster as dg

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import (
    SINGLE_RUN,
    WAREHOUSE_POOL,
    daily_partitions,
    preview,
    row_count,
    table_metadata,
    upstream_window,
)
from crypto_assets.defs.news import SENTIMENT_HOURLY
from crypto_assets.defs.prices import RAW_PRICES
from crypto_assets.defs.resources import Universe, Warehouse
from crypto_assets.schemas import validate_frame
from crypto_assets.transforms.features import FEATURE_NAMES, build_feature_vectors, feature_catalogue_markdown
from crypto_assets.transforms.indicators import technical_indicators as compute_indicators

TECHNICAL_INDICATORS = dg.AssetKey(["features", "technical_indicators"])
FEATURE_VECTORS = dg.AssetKey(["features", "feature_vectors"])

# RSI, MACD and EMA carry memory: 14 days of bars before a partition make its values equal the
# whole-history values within 1e-6 relative (7 days do not; see transforms/indicators.py).
INDICATOR_LOOKBACK_DAYS = 14


@dg.asset(
    key=TECHNICAL_INDICATORS,
    group_name="features",
    kinds={"duckdb", "pandas", "ta"},
    deps=[
        dg.AssetDep(RAW_PRICES, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-INDICATOR_LOOKBACK_DAYS))
    ],
    description=(
        "The `ta` indicators behind features 1-5 and 9 per (symbol, bar): RSI 14, MACD 12/26/9, Bollinger 20/2, "
        f"ATR 14, EMA 12/26, VWAP 24. Reads {INDICATOR_LOOKBACK_DAYS} days of bars before each partition so "
        "values equal a whole-history computation. Warm-up values are null, never 0."
    ),
    metadata={**table_metadata("features.technical_indicators"), "partition_expr": "ts"},
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
)
def technical_indicators(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    prices_start, prices_end = upstream_window(context, RAW_PRICES)
    with warehouse.get_connection() as conn:
        prices = wh.read_window(
            conn, "raw.prices", time_column="ts", start=prices_start, end=prices_end, symbols=universe.symbols
        )
        indicators = compute_indicators(prices)
        indicators = indicators[(indicators["ts"] >= start) & (indicators["ts"] < end)].reset_index(drop=True)
        indicators = validate_frame("features.technical_indicators", indicators)
        wh.replace_rows(
            conn,
            "features.technical_indicators",
            indicators,
            time_column="ts",
            windows=[(start, end)],
            scope={"symbol": universe.symbols},
        )
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(indicators)),
            "lookback_bars_read": len(prices) - len(indicators),
            "preview": preview(indicators),
        }
    )


@dg.asset(
    key=FEATURE_VECTORS,
    group_name="features",
    kinds={"duckdb", "pandas"},
    deps=[
        dg.AssetDep(TECHNICAL_INDICATORS),
        # 24-bar windows at the start of a day reach into the previous day's bars.
        dg.AssetDep(RAW_PRICES, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
        dg.AssetDep(SENTIMENT_HOURLY),
    ],
    description=(
        "The 16-feature vector per (symbol, hourly bar), exactly as features.md defines it: lags and windows "
        "count hours on the UTC grid, and a lag or window missing an hour is null (never a longer move labelled "
        "1h). Provenance columns: `gap_hours_24h` (hours of `[ts - 23h, ts]` without a bar), `venues_24h` "
        "(providers that served those bars; 2+ = a venue switch) and `news_coverage_24h` (share of those hours "
        "a news provider covered). The feature catalogue (formula, window, range, null rule, source of each "
        "feature) is in this asset's metadata and docs/features.md."
    ),
    metadata={
        **table_metadata("features.feature_vectors"),
        "partition_expr": "ts",
        "feature_catalogue": dg.MetadataValue.md(feature_catalogue_markdown()),
    },
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
)
def feature_vectors(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    prices_start, prices_end = upstream_window(context, RAW_PRICES)
    with warehouse.get_connection() as conn:
        prices = wh.read_window(
            conn, "raw.prices", time_column="ts", start=prices_start, end=prices_end, symbols=universe.symbols
        )
        indicators = wh.read_window(
            conn, "features.technical_indicators", time_column="ts", start=start, end=end, symbols=universe.symbols
        )
        sentiment = wh.read_window(
            conn, "features.sentiment_hourly", time_column="ts", start=start, end=end, symbols=universe.symbols
        )
        vectors = build_feature_vectors(prices, indicators, sentiment)
        vectors = vectors[(vectors["ts"] >= start) & (vectors["ts"] < end)].reset_index(drop=True)
        vectors = validate_frame("features.feature_vectors", vectors)
        wh.replace_rows(
            conn,
            "features.feature_vectors",
            vectors,
            time_column="ts",
            windows=[(start, end)],
            scope={"symbol": universe.symbols},
        )
    null_rates = vectors[list(FEATURE_NAMES)].isna().mean().round(4).to_dict() if not vectors.empty else {}
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(vectors)),
            "complete_rows": int(vectors[list(FEATURE_NAMES)].notna().all(axis=1).sum()) if not vectors.empty else 0,
            "null_rate_per_feature": dg.MetadataValue.json(null_rates),
            "rows_with_gaps_24h": int((vectors["gap_hours_24h"] > 0).sum()),
            "rows_mixing_venues_24h": int((vectors["venues_24h"] > 1).sum()),
            "rows_without_news_coverage": int((~(vectors["news_coverage_24h"] > 0)).sum()),
            "preview": preview(vectors),
        }
    )
