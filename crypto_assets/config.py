"""Settings from ``CRYPTO_ASSETS_*`` environment variables, validated once, with the spec's defaults.

Definitions, the CLI and the replay server all read settings through ``load_settings`` so a
malformed value fails the same way everywhere: a ConfigError naming the variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from crypto_assets.errors import ConfigError
from crypto_assets.symbols import DEFAULT_UNIVERSE, parse_symbols

REPO_ROOT = Path(__file__).resolve().parent.parent
# In a checkout the bundled data, notebook and dagster.yaml sit beside the package; `pip install .`
# puts them under <prefix>/share/crypto_assets (see [tool.setuptools.data-files] in pyproject.toml).
IS_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
SHARE_DIR = REPO_ROOT if IS_CHECKOUT else Path(sys.prefix) / "share" / "crypto_assets"

PRICE_PROVIDERS: tuple[str, ...] = ("binance", "coinbase", "cryptocompare", "kraken")
NEWS_PROVIDERS: tuple[str, ...] = ("cryptocompare", "rss", "newsapi")

DEFAULT_PRICE_PROVIDERS: tuple[str, ...] = ("binance", "coinbase", "cryptocompare")
DEFAULT_NEWS_PROVIDERS: tuple[str, ...] = ("cryptocompare", "rss")

PUBLIC_URLS: dict[str, str] = {
    "binance": "https://api.binance.com",
    "coinbase": "https://api.exchange.coinbase.com",
    "kraken": "https://api.kraken.com",
    "cryptocompare": "https://min-api.cryptocompare.com",
    "newsapi": "https://newsapi.org",
}

DEFAULT_RSS_FEEDS: tuple[str, ...] = (
    "https://www.coindesk.com/arc/outboundfeeds/rss/",
    "https://cointelegraph.com/rss",
    "https://decrypt.co/feed",
)


def default_duckdb_path() -> Path:
    """``data/crypto.duckdb`` of the checkout, or of the working directory for an installed package."""
    return (REPO_ROOT if IS_CHECKOUT else Path.cwd()) / "data" / "crypto.duckdb"


@dataclass(frozen=True)
class Settings:
    duckdb_path: Path
    symbols: tuple[str, ...]
    price_providers: tuple[str, ...]
    news_providers: tuple[str, ...]
    provider_urls: Mapping[str, str]
    rss_feeds: tuple[str, ...]
    rate_limits: bool


def _names(env: Mapping[str, str], var: str, allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(var)
    if raw is None:
        return default
    names = tuple(raw.split(","))
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{var}={raw!r}: unknown provider {name!r}; choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{var}={raw!r}: a provider is listed twice")
    return names


def _url(var: str, value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{var}={value!r}: expected an http(s) URL such as http://127.0.0.1:8765/binance")
    return value.rstrip("/")


def _switch(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var)
    if raw is None:
        return default
    if raw not in ("on", "off"):
        raise ConfigError(f"{var}={raw!r}: expected on or off")
    return raw == "on"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    duckdb_raw = env.get("CRYPTO_ASSETS_DUCKDB")
    if duckdb_raw is not None and not duckdb_raw.strip():
        raise ConfigError("CRYPTO_ASSETS_DUCKDB is empty: set it to a file path such as data/crypto.duckdb")
    duckdb_path = Path(duckdb_raw).expanduser().absolute() if duckdb_raw else default_duckdb_path()

    symbols_raw = env.get("CRYPTO_ASSETS_SYMBOLS")
    symbols = (
        parse_symbols(symbols_raw, source="CRYPTO_ASSETS_SYMBOLS") if symbols_raw is not None else DEFAULT_UNIVERSE
    )

    urls = {
        name: _url(f"CRYPTO_ASSETS_{name.upper()}_URL", env[f"CRYPTO_ASSETS_{name.upper()}_URL"])
        if f"CRYPTO_ASSETS_{name.upper()}_URL" in env
        else url
        for name, url in PUBLIC_URLS.items()
    }
    feeds_raw = env.get("CRYPTO_ASSETS_RSS_FEEDS")
    feeds = (
        tuple(_url("CRYPTO_ASSETS_RSS_FEEDS", feed) for feed in feeds_raw.split(","))
        if feeds_raw is not None
        else DEFAULT_RSS_FEEDS
    )
    return Settings(
        duckdb_path=duckdb_path,
        symbols=symbols,
        price_providers=_names(env, "CRYPTO_ASSETS_PRICE_PROVIDERS", PRICE_PROVIDERS, DEFAULT_PRICE_PROVIDERS),
        news_providers=_names(env, "CRYPTO_ASSETS_NEWS_PROVIDERS", NEWS_PROVIDERS, DEFAULT_NEWS_PROVIDERS),
        provider_urls=urls,
        rss_feeds=feeds,
        # off only for servers you run yourself (the replay server sets it): the limits protect the providers.
        rate_limits=_switch(env, "CRYPTO_ASSETS_RATE_LIMITS", default=True),
    )


RUN_RETENTION_VARIABLE = "CRYPTO_ASSETS_RUN_RETENTION_DAYS"
DEFAULT_RUN_RETENTION_DAYS = 30


def run_retention_days(env: Mapping[str, str] | None = None) -> int:
    """Days a finished run is kept in the Dagster instance (``crypto_assets.defs.housekeeping``)."""
    raw = (os.environ if env is None else env).get(RUN_RETENTION_VARIABLE)
    if raw is None:
        return DEFAULT_RUN_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise ConfigError(f"{RUN_RETENTION_VARIABLE}={raw!r}: expected a whole number of days such as 30") from None
    if days < 1:
        raise ConfigError(f"{RUN_RETENTION_VARIABLE}={raw!r}: keep runs at least 1 day")
    return days
