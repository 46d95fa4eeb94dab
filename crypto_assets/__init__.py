"""crypto_assets: crypto market data and news as Dagster assets, turned into ML-ready tables in DuckDB."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crypto_assets.loading import load_prices, load_training_table

__all__ = ["load_prices", "load_training_table"]


def __getattr__(name: str) -> Any:
    # Lazy, so `crypto-assets replay-server` and other light entry points don't import pandas and Dagster.
    if name in __all__:
        from crypto_assets import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'crypto_assets' has no attribute {name!r}")
