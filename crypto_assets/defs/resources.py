"""Resources: the warehouse, the universe and the data sources, configured from the environment."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from crypto_assets import warehouse
from crypto_assets.config import load_settings
from crypto_assets.providers import registry


class Warehouse(DuckDBResource):
    """The DuckDB warehouse file. Connections are UTC, closed on error, and wait while another process writes."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.database) as conn:
            yield conn


class Universe(dg.ConfigurableResource):
    """The symbols every asset covers (``CRYPTO_ASSETS_SYMBOLS``)."""

    symbols: list[str] = Field(description="Universe symbols, e.g. BTC, ETH")


RATE_LIMITS = "Client-side rate limits per provider (CRYPTO_ASSETS_RATE_LIMITS; off only for your own servers)"


class _Sources(dg.ConfigurableResource):
    """Providers of one kind in the configured order, their base URLs and provider options.

    API keys are not config: they are read with ``dg.EnvVar`` when the clients are built, so they never
    appear in run config, logs or the UI. A key-only provider without its key is skipped, never called.
    """

    KIND: ClassVar[str]
    providers: list[str] = Field(description="Providers in order")
    urls: dict[str, str] = Field(description="Base URL per provider (CRYPTO_ASSETS_<PROVIDER>_URL)")
    options: dict[str, str] = Field(
        default_factory=dict, description="Provider settings that are set, by variable (CRYPTO_ASSETS_RSS_FEEDS, ...)"
    )
    rate_limited: bool = Field(default=True, description=RATE_LIMITS)

    def build(self) -> tuple[list[Any], list[registry.Skipped]]:
        """The clients in order, and the providers skipped (key-only without a key)."""
        keys = {variable: dg.EnvVar(variable).get_value() for variable in registry.key_variables()}
        options = registry.provider_options(self.options)
        return registry.build_clients(
            self.KIND, self.providers, urls=self.urls, options=options, keys=keys, rate_limited=self.rate_limited
        )

    def clients(self) -> list[Any]:
        return self.build()[0]


class PriceSources(_Sources):
    """Price providers in failover order (CRYPTO_ASSETS_PRICE_PROVIDERS)."""

    KIND: ClassVar[str] = registry.PRICES


class NewsSources(_Sources):
    """News providers (CRYPTO_ASSETS_NEWS_PROVIDERS) and the sentiment model."""

    KIND: ClassVar[str] = registry.NEWS
    sentiment_model: str = Field(default="vader", description="Article sentiment model")


def build_resources() -> dict[str, object]:
    settings = load_settings()
    sources = {
        "urls": dict(settings.provider_urls),
        "options": {
            variable: os.environ[variable] for variable in registry.option_variables() if variable in os.environ
        },
        "rate_limited": settings.rate_limits,
    }
    return {
        "warehouse": Warehouse(database=str(settings.duckdb_path)),
        "universe": Universe(symbols=list(settings.symbols)),
        "price_sources": PriceSources(providers=list(settings.price_providers), **sources),
        "news_sources": NewsSources(providers=list(settings.news_providers), **sources),
    }


def resource_definitions() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
