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
from typing import Any
from urllib.parse import urlparse

from crypto_assets.errors import ConfigError
from crypto_assets.providers import registry
from crypto_assets.symbols import DEFAULT_UNIVERSE, parse_symbols

REPO_ROOT = Path(__file__).resolve().parent.parent
# In a checkout the bundled data, notebook and dagster.yaml sit beside the package; `pip install .`
# puts them under <prefix>/share/crypto_assets (see [tool.setuptools.data-files] in pyproject.toml).
IS_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
SHARE_DIR = REPO_ROOT if IS_CHECKOUT else Path(sys.prefix) / "share" / "crypto_assets"


def default_duckdb_path() -> Path:
    """``data/crypto.duckdb`` of the checkout, or of the working directory for an installed package."""
    return (REPO_ROOT if IS_CHECKOUT else Path.cwd()) / "data" / "crypto.duckdb"


@dataclass(frozen=True)
class Settings:
    duckdb_path: Path
    symbols: tuple[str, ...]
    price_providers: tuple[str, ...]
    news_providers: tuple[str, ...]
    provider_urls: Mapping[str, str]  # base URL per provider that has one
    provider_options: Mapping[str, Mapping[str, Any]]  # provider-specific settings (RSS feeds, GDELT history)
    rate_limits: bool

    def providers(self, kind: str) -> tuple[str, ...]:
        return self.price_providers if kind == registry.PRICES else self.news_providers


PRICE_PROVIDERS_ENV = "CRYPTO_ASSETS_PRICE_PROVIDERS"
NEWS_PROVIDERS_ENV = "CRYPTO_ASSETS_NEWS_PROVIDERS"


def _names(env: Mapping[str, str], var: str, kind: str) -> tuple[str, ...]:
    raw = env.get(var)
    if raw is None:
        return registry.default_order(kind)
    allowed = registry.names_of(kind)
    names = tuple(raw.split(","))
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{var}={raw!r}: unknown provider {name!r}; choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{var}={raw!r}: a provider is listed twice")
    return names


def http_url(var: str, value: str) -> str:
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


def number(variable: str, raw: str, *, whole: bool, minimum: float, maximum: float, meaning: str) -> float:
    """A numeric setting, or a ConfigError naming the variable and what is expected (``meaning``: e.g. "seconds")."""
    try:
        value = int(raw.strip()) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or value != value or not minimum <= value <= maximum:  # value != value: NaN
        kind = "a whole number of" if whole else "a number of"
        raise ConfigError(f"{variable}={raw!r}: expected {kind} {meaning} between {minimum:g} and {maximum:g}")
    return value


def _number_setting(
    env: Mapping[str, str] | None,
    variable: str,
    default: float,
    *,
    whole: bool,
    minimum: float,
    maximum: float,
    meaning: str,
) -> float:
    """``variable`` of ``env`` (default: the process environment) read by ``number``; ``default`` when unset."""
    raw = (os.environ if env is None else env).get(variable)
    if raw is None:
        return default
    return number(variable, raw, whole=whole, minimum=minimum, maximum=maximum, meaning=meaning)


LOCK_TIMEOUT_ENV = "CRYPTO_ASSETS_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 120.0
RUN_RETENTION_ENV = "CRYPTO_ASSETS_RUN_RETENTION_DAYS"
DEFAULT_RUN_RETENTION_DAYS = 30


def configured_lock_timeout(env: Mapping[str, str] | None = None) -> float:
    """How long a writer waits for the warehouse's lock: ``CRYPTO_ASSETS_LOCK_TIMEOUT`` seconds (default 120)."""
    return _number_setting(
        env, LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT_S, whole=False, minimum=0, maximum=86_400, meaning="seconds"
    )


def run_retention_days(env: Mapping[str, str] | None = None) -> int:
    """Days a finished run is kept in the Dagster instance (``crypto_assets.defs.housekeeping``)."""
    days = _number_setting(
        env, RUN_RETENTION_ENV, DEFAULT_RUN_RETENTION_DAYS, whole=True, minimum=1, maximum=36_500, meaning="days"
    )
    return int(days)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    # Read elsewhere (the warehouse, the housekeeping job), refused here when malformed, before anything runs.
    configured_lock_timeout(env)
    run_retention_days(env)
    duckdb_raw = env.get("CRYPTO_ASSETS_DUCKDB")
    if duckdb_raw is not None and not duckdb_raw.strip():
        raise ConfigError("CRYPTO_ASSETS_DUCKDB is empty: set it to a file path such as data/crypto.duckdb")
    duckdb_path = Path(duckdb_raw).expanduser().absolute() if duckdb_raw else default_duckdb_path()

    symbols_raw = env.get("CRYPTO_ASSETS_SYMBOLS")
    symbols = (
        parse_symbols(symbols_raw, source="CRYPTO_ASSETS_SYMBOLS") if symbols_raw is not None else DEFAULT_UNIVERSE
    )

    urls = {
        spec.name: http_url(spec.url_env, env[spec.url_env]) if spec.url_env in env else spec.public_url
        for spec in registry.all_providers()
        if spec.url_env
    }
    return Settings(
        duckdb_path=duckdb_path,
        symbols=symbols,
        price_providers=_names(env, PRICE_PROVIDERS_ENV, registry.PRICES),
        news_providers=_names(env, NEWS_PROVIDERS_ENV, registry.NEWS),
        provider_urls=urls,
        provider_options=registry.provider_options(env),
        # off only for servers you run yourself (the replay server sets it): the limits protect the providers.
        rate_limits=_switch(env, "CRYPTO_ASSETS_RATE_LIMITS", default=True),
    )
