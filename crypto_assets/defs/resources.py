"""Resources: the warehouse, the universe and the data sources, configured from the environment."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from crypto_assets import warehouse
from crypto_assets.config import load_settings
from crypto_assets.providers.prices import PriceClient, make_price_client


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


class PriceSources(dg.ConfigurableResource):
    """Price providers in failover order and their base URLs."""

    providers: list[str] = Field(description="Failover order (CRYPTO_ASSETS_PRICE_PROVIDERS)")
    urls: dict[str, str] = Field(description="Base URL per provider (CRYPTO_ASSETS_<PROVIDER>_URL)")
    cryptocompare_api_key: str | None = Field(default=None, description="Optional CRYPTOCOMPARE_API_KEY")
    rate_limited: bool = Field(default=True, description=RATE_LIMITS)

    def clients(self) -> list[PriceClient]:
        return [
            make_price_client(
                name,
                self.urls[name],
                api_key=self.cryptocompare_api_key if name == "cryptocompare" else None,
                rate_limited=self.rate_limited,
            )
            for name in self.providers
        ]


class NewsSources(dg.ConfigurableResource):
    """News providers, feeds and optional keys (keyed sources are skipped when their key is unset)."""

    providers: list[str] = Field(description="CRYPTO_ASSETS_NEWS_PROVIDERS")
    cryptocompare_url: str
    newsapi_url: str
    rss_feeds: list[str] = Field(description="CRYPTO_ASSETS_RSS_FEEDS")
    cryptocompare_api_key: str | None = None
    newsapi_api_key: str | None = None
    sentiment_model: str = Field(default="vader", description="Article sentiment model")
    rate_limited: bool = Field(default=True, description=RATE_LIMITS)


def _optional_secret(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources() -> dict[str, object]:
    settings = load_settings()
    return {
        "warehouse": Warehouse(database=str(settings.duckdb_path)),
        "universe": Universe(symbols=list(settings.symbols)),
        "price_sources": PriceSources(
            providers=list(settings.price_providers),
            urls=dict(settings.provider_urls),
            cryptocompare_api_key=_optional_secret("CRYPTOCOMPARE_API_KEY"),
            rate_limited=settings.rate_limits,
        ),
        "news_sources": NewsSources(
            providers=list(settings.news_providers),
            cryptocompare_url=settings.provider_urls["cryptocompare"],
            newsapi_url=settings.provider_urls["newsapi"],
            rss_feeds=list(settings.rss_feeds),
            cryptocompare_api_key=_optional_secret("CRYPTOCOMPARE_API_KEY"),
            newsapi_api_key=_optional_secret("NEWSAPI_API_KEY"),
            rate_limited=settings.rate_limits,
        ),
    }


def resource_definitions() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
