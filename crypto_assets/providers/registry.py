"""The provider registry: each provider module of this package declares one ``PROVIDER = ProviderSpec(...)``.

Everything that needs to know the providers reads them here: settings validation and defaults, the failover
order, the news asset, the replay server's routes, the assets' ``kinds``, the ``providers`` command and the
README's provider table. Adding a provider is its module (client, answer parsing, replay format, spec), its
recorded-answer fixture and its tests; nothing else lists providers by hand.

Modules are discovered (``pkgutil``) on first use, not at import time, so importing this module is cheap.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from crypto_assets.errors import ConfigError
from crypto_assets.http import HttpClient, collect

if TYPE_CHECKING:
    from crypto_assets.replay.wire import ReplayRoutes

PRICES = "prices"
NEWS = "news"
KINDS = (PRICES, NEWS)


@dataclass(frozen=True)
class RateLimit:
    """A provider's request budget: the client-side token bucket, and the published limit it respects."""

    per_second: float
    burst: float = 1.0
    published: str = ""

    @property
    def seconds_per_request(self) -> float:
        return 1.0 / self.per_second

    def http_options(self, rate_limited: bool) -> dict[str, Any]:
        """HttpClient's rate settings: this bucket, or none against servers you run yourself."""
        if not rate_limited:
            return {"rate_per_second": None}
        return {"rate_per_second": self.per_second, "burst": self.burst}


@dataclass(frozen=True)
class SymbolMap:
    """How a provider names a universe symbol: a pattern plus overrides where it differs (Kraken's XBT)."""

    pattern: str
    overrides: Mapping[str, str] = field(default_factory=dict)
    lower: bool = False

    def to_provider(self, symbol: str) -> str:
        base = self.overrides.get(symbol, symbol)
        name = self.pattern.format(sym=base)
        return name.lower() if self.lower else name

    def to_universe(self, name: str, symbols: Iterable[str]) -> str | None:
        """The universe symbol among ``symbols`` that the provider calls ``name`` (None when none)."""
        return next((symbol for symbol in symbols if self.to_provider(symbol) == name), None)


@dataclass(frozen=True)
class Option:
    """A provider-specific setting from the environment (RSS feed list, GDELT's history depth)."""

    name: str
    env: str
    default: Any
    parse: Callable[[str, str], Any]  # (variable, raw value) -> value; raises ConfigError

    def value(self, env: Mapping[str, str]) -> Any:
        """The setting in ``env`` (a ConfigError naming the variable when malformed), else the default."""
        return self.parse(self.env, env[self.env]) if self.env in env else self.default


@dataclass(frozen=True)
class ProviderSpec:
    """Everything the project knows about one provider."""

    name: str
    kinds: tuple[str, ...]
    title: str
    public_url: str  # "" when the provider has no single base URL (RSS: a list of feeds)
    docs: tuple[str, ...]  # the official documentation the client and the replay format follow
    rate_limit: RateLimit
    history: str  # how far back it answers, in a few words
    access: str  # keyless or not, what a key adds, where it is geo-blocked
    price_client: type | None = None
    news_client: type | None = None
    replay: ReplayRoutes | None = None
    key_env: str | None = None
    key_required: bool = False
    default_rank: int | None = None  # place in the default order of its kinds; None: not used by default
    options: tuple[Option, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if not self.kinds or unknown:
            raise ValueError(f"provider {self.name}: kinds must be a non-empty subset of {KINDS}")
        if (PRICES in self.kinds) != (self.price_client is not None):
            raise ValueError(f"provider {self.name}: a price provider has a price client")
        if (NEWS in self.kinds) != (self.news_client is not None):
            raise ValueError(f"provider {self.name}: a news provider has a news client")
        if self.key_required and not self.key_env:
            raise ValueError(f"provider {self.name}: a key-only provider names its key variable")

    @property
    def symbols(self) -> SymbolMap | None:
        """How a price provider names a universe symbol (its price client's map)."""
        return self.price_client.symbols if self.price_client is not None else None

    @property
    def url_env(self) -> str | None:
        """``CRYPTO_ASSETS_<NAME>_URL``, for providers with a base URL."""
        return f"CRYPTO_ASSETS_{self.name.upper()}_URL" if self.public_url else None

    def client(self, kind: str, config: ClientConfig, *, http: Any = None) -> Any:
        """A new client of this provider for ``kind`` (``prices`` or ``news``); ``http``: an HttpClient to use."""
        cls = self.price_client if kind == PRICES else self.news_client
        if cls is None:
            raise ConfigError(f"{self.name} is not a {kind} provider")
        return cls(
            config.base_url, api_key=config.api_key, rate_limited=config.rate_limited, options=config.options, http=http
        )


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: str | None = None
    rate_limited: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


class BaseClient:
    """What every provider client shares: its name, base URL, key, options and HTTP session, whose rate limit is
    the one its registry entry declares (none against servers you run yourself: ``rate_limited=False``)."""

    name: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        rate_limited: bool = True,
        options: Mapping[str, Any] | None = None,
        http: HttpClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.rate_limited = rate_limited
        self.options = dict(options or {})
        self.http = http or HttpClient(self.name, self.base_url, **self._http_options(rate_limited))

    @classmethod
    def _http_options(cls, rate_limited: bool) -> dict[str, Any]:
        return provider(cls.name).rate_limit.http_options(rate_limited)

    def _auth_headers(self) -> dict[str, str]:
        """Credential headers, sent with every request (also through an injected HttpClient)."""
        return {}

    def _get_parsed(self, path: str, params: dict[str, Any], parse: Callable[[Any], Any]) -> Any:
        """GET JSON and return ``parse(body)``; parse errors carry the request's redacted URL."""
        headers = self._auth_headers() or None
        return collect(lambda validate: self.http.get_json(path, params, validate=validate, headers=headers), parse)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


@cache
def _registry() -> dict[str, ProviderSpec]:
    package = importlib.import_module("crypto_assets.providers")
    specs: dict[str, ProviderSpec] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        spec = getattr(module, "PROVIDER", None)
        if not isinstance(spec, ProviderSpec):
            continue
        if spec.name in specs:
            raise RuntimeError(f"provider {spec.name!r} is declared twice (second in {module.__name__})")
        specs[spec.name] = spec
    return dict(sorted(specs.items()))


def all_providers() -> tuple[ProviderSpec, ...]:
    """Every registered provider, by name."""
    return tuple(_registry().values())


def provider(name: str) -> ProviderSpec:
    try:
        return _registry()[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; choose from {', '.join(_registry())}") from None


def providers_of(kind: str) -> tuple[ProviderSpec, ...]:
    return tuple(spec for spec in _registry().values() if kind in spec.kinds)


def names_of(kind: str) -> tuple[str, ...]:
    return tuple(spec.name for spec in providers_of(kind))


def default_order(kind: str) -> tuple[str, ...]:
    """The default providers of ``kind`` (keyless ones that answer today), in their declared order."""
    ranked = [spec for spec in providers_of(kind) if spec.default_rank is not None]
    return tuple(spec.name for spec in sorted(ranked, key=lambda spec: (spec.default_rank, spec.name)))


@dataclass(frozen=True)
class Skipped:
    """A configured provider that was not called, and why (one info line)."""

    provider: str
    reason: str


def client_config(
    spec: ProviderSpec,
    *,
    urls: Mapping[str, str],
    options: Mapping[str, Mapping[str, Any]],
    keys: Mapping[str, str | None],
    rate_limited: bool,
) -> ClientConfig | None:
    """How to build ``spec``'s clients; None for a key-only provider without its key (skipped, never called).

    ``keys`` maps key variables (``CRYPTOCOMPARE_API_KEY``) to their values (None or "" when unset).
    """
    key = (keys.get(spec.key_env) or None) if spec.key_env else None
    if spec.key_required and not key:
        return None
    return ClientConfig(
        base_url=urls.get(spec.name, spec.public_url),
        api_key=key,
        rate_limited=rate_limited,
        options=options.get(spec.name, {}),
    )


def build_clients(
    kind: str,
    names: Iterable[str],
    *,
    urls: Mapping[str, str],
    options: Mapping[str, Mapping[str, Any]],
    keys: Mapping[str, str | None],
    rate_limited: bool,
) -> tuple[list[Any], list[Skipped]]:
    """Clients of ``kind`` in the order of ``names``; a key-only provider without its key is skipped, never built."""
    clients: list[Any] = []
    skipped: list[Skipped] = []
    for name in names:
        spec = provider(name)
        config = client_config(spec, urls=urls, options=options, keys=keys, rate_limited=rate_limited)
        if config is None:
            skipped.append(Skipped(name, f"{name}: {spec.key_env} is not set; a key-only provider is skipped"))
            continue
        clients.append(spec.client(kind, config))
    return clients, skipped


def key_variables() -> tuple[str, ...]:
    """Every provider key variable, e.g. ``CRYPTOCOMPARE_API_KEY``."""
    return tuple(sorted({spec.key_env for spec in _registry().values() if spec.key_env}))


def provider_options(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each provider's options (RSS feeds, GDELT's history depth) from ``env``, the defaults where unset."""
    return {spec.name: {option.name: option.value(env) for option in spec.options} for spec in all_providers()}


def option_variables() -> tuple[str, ...]:
    """Every provider option variable, e.g. ``CRYPTO_ASSETS_RSS_FEEDS``."""
    return tuple(sorted({option.env for spec in _registry().values() for option in spec.options}))


def markdown_table() -> str:
    """README's provider table, from the registry (a test keeps README.md equal to it)."""
    defaults = {kind: default_order(kind) for kind in KINDS}
    lines = [
        "| provider | kind | key | history | rate limit (published) | access | default |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in all_providers():
        ranks = [f"{kind} #{defaults[kind].index(spec.name) + 1}" for kind in spec.kinds if spec.name in defaults[kind]]
        key = f"required: `{spec.key_env}`" if spec.key_required else "keyless"
        cells = [
            f"`{spec.name}` ({spec.title})",
            ", ".join(spec.kinds),
            key,
            spec.history,
            spec.rate_limit.published,
            spec.access,
            ", ".join(ranks) or "no",
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # run as a script, this file is not the module the providers register with
    from crypto_assets.providers import registry

    print(registry.markdown_table(), end="")
