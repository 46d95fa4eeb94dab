"""ml/training_set: features + labels + purged chronological splits, and its reader-safe export."""

import dagster as dg

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import WAREHOUSE_POOL, preview, table_metadata
from crypto_assets.defs.features import FEATURE_VECTORS
from crypto_assets.defs.prices import RAW_PRICES
from crypto_assets.defs.resources import Universe, Warehouse
from crypto_assets.schemas import validate_frame
from crypto_assets.transforms.training import build_training_set, split_summary

TRAINING_SET = dg.AssetKey(["ml", "training_set"])


@dg.asset(
    key=TRAINING_SET,
    group_name="ml",
    kinds={"duckdb", "pandas", "parquet"},
    deps=[FEATURE_VECTORS, RAW_PRICES],
    pool=WAREHOUSE_POOL,
    description=(
        "Point-in-time training table: the 16 features, the provenance columns `gap_hours_24h`, `venues_24h` "
        "and `news_coverage_24h` (not features: which rows mix venues or rest on thin news coverage), "
        "`target_log_return_1h = ln(close[t+1]/close[t])`, `target_up_1h`, and a chronological `split` "
        "(70/15/15 of distinct `ts`, 24 bars purged after each boundary). Only complete rows. Rebuilt from "
        "every feature partition, then exported to Parquet "
        "(`exports/ml.training_set.parquet`, with `exports/raw.prices.parquet`) so notebooks read it without "
        "locking the warehouse: `from crypto_assets import load_training_table`."
    ),
    metadata=table_metadata("ml.training_set"),
)
def training_set(context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe) -> dg.MaterializeResult:
    with warehouse.get_connection() as conn:
        features = wh.read_window(conn, "features.feature_vectors", time_column="ts", symbols=universe.symbols)
        prices = wh.read_window(conn, "raw.prices", time_column="ts", symbols=universe.symbols)
        table = build_training_set(features, prices)
        table = validate_frame("ml.training_set", table)
        wh.replace_table(conn, "ml.training_set", table)
        export = wh.export_parquet(conn, "ml.training_set", warehouse.database)
        # The bars it was built from, for notebooks that plot prices (crypto_assets.loading.load_prices).
        prices_export = wh.export_parquet(conn, "raw.prices", warehouse.database)
    summary = split_summary(table)
    context.log.info(f"training set: {len(table)} rows, export {export}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "splits": dg.MetadataValue.json(summary),
            "rows_mixing_venues_24h": int((table["venues_24h"] > 1).sum()),
            "export": dg.MetadataValue.path(str(export)),
            "prices_export": dg.MetadataValue.path(str(prices_export)),
            "preview": preview(table),
        }
    )
