"""Dagster definitions, one module per asset family; loaded by ``crypto_assets.definitions``."""
