"""crypto_assets: crypto market data and news as Dagster assets, turned into ML-ready tables in DuckDB."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crypto_assets.loading import load_training_table

__all__ = ["load_training_table"]


def __getattr__(name: str) -> Any:
    # Lazy, so `crypto-assets replay-server` and other light entry points don't import pandas and Dagster.
    if name == "load_training_table":
        from crypto_assets.loading import load_training_table

        return load_training_table
    raise AttributeError(f"module 'crypto_assets' has no attribute {name!r}")
