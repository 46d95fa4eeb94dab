"""A test fails when a provider is missing from anything that should list it.

The contract (shared/spec/interfaces.md, "Providers (one registry)"): adding a provider touches its module, its
recorded-answer fixture and its tests; nothing else lists providers by hand. So every check here iterates over
``registry.all_providers()`` and asks each place that must know a provider (its module, its fixture folder, the
replay server, the settings, the assets' kinds, README's table, the defaults, client building) whether it does.
Fast and offline: the only server is a replay server on 127.0.0.1.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import pkgutil
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import dagster as dg
import pytest

import crypto_assets.providers
from crypto_assets.config import NEWS_PROVIDERS_ENV, PRICE_PROVIDERS_ENV, REPO_ROOT, load_settings
from crypto_assets.errors import ConfigError
from crypto_assets.providers import registry
from crypto_assets.providers.registry import KINDS, NEWS, PRICES, ProviderSpec, Skipped
from crypto_assets.replay.server import ReplayServer, replayed_providers
from crypto_assets.replay.wire import ReplayRoutes
from crypto_assets_tests.fixtures_util import PROVIDER_FIXTURES

PROVIDERS = registry.all_providers()
NAMES = [spec.name for spec in PROVIDERS]
each_provider = pytest.mark.parametrize("spec", PROVIDERS, ids=NAMES)

PACKAGE = crypto_assets.providers
PACKAGE_DIR = Path(PACKAGE.__file__).parent
SHARED_BASES = {"__init__", "prices", "news", "registry"}  # modules of the package that are not providers
KIND_ENV = {PRICES: PRICE_PROVIDERS_ENV, NEWS: NEWS_PROVIDERS_ENV}
CONTRACT_DEFAULTS = {  # shared/spec/interfaces.md, Environment: "keyless ones that answer today, e.g. ..."
    PRICES: ("binance", "okx", "coinbase", "bitstamp"),
    NEWS: ("gdelt", "rss"),
}
README = REPO_ROOT / "README.md"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP(S)_PROXY
TABLE = re.compile(r"<!-- providers:start -->\n(.*?)<!-- providers:end -->", re.DOTALL)


def provider_modules() -> dict[str, ModuleType]:
    """Every module of crypto_assets/providers/ that is not a shared base, by module name."""
    modules = {}
    for info in pkgutil.iter_modules(PACKAGE.__path__):
        if info.name not in SHARED_BASES:
            modules[info.name] = importlib.import_module(f"{PACKAGE.__name__}.{info.name}")
    return modules


def variables_of(spec: ProviderSpec) -> list[str]:
    """The environment variables that configure a provider: its base URL and its options."""
    return [variable for variable in (spec.url_env, *(option.env for option in spec.options)) if variable]


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    """A replay server of this module's own, so its request counts are not shared with other tests."""
    with ReplayServer() as server:
        yield server


# ----------------------------------------------------------------------------------------------- module


def test_every_provider_module_declares_exactly_one_provider() -> None:
    """A module in crypto_assets/providers/ that is not a shared base is a provider: one ``PROVIDER = ...``."""
    modules = provider_modules()
    assert modules, "no provider module found"
    for name, module in modules.items():
        assert module.__file__ is not None and Path(module.__file__).parent == PACKAGE_DIR, name
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        assignments = [
            node
            for node in tree.body
            if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PROVIDER" for t in node.targets))
            or (isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "PROVIDER")
        ]
        assert len(assignments) == 1, f"{name}.py assigns PROVIDER {len(assignments)} times (one spec per module)"
        assert isinstance(getattr(module, "PROVIDER", None), ProviderSpec), f"{name}.PROVIDER is not a ProviderSpec"
        specs = [key for key, value in vars(module).items() if isinstance(value, ProviderSpec)]
        assert specs == ["PROVIDER"], f"{name}.py holds ProviderSpec objects {specs}; only PROVIDER is declared"


@each_provider
def test_provider_module_holds_its_spec_clients_and_replay_format(spec: ProviderSpec) -> None:
    """One module of crypto_assets/providers/ declares the spec, and its client and replay classes live there."""
    declaring = [name for name, module in provider_modules().items() if module.PROVIDER is spec]
    assert len(declaring) == 1, f"{spec.name} is declared by {declaring or 'no module'} of crypto_assets/providers/"
    module = f"{PACKAGE.__name__}.{declaring[0]}"
    parts = [spec.price_client, spec.news_client, type(spec.replay) if spec.replay is not None else None]
    elsewhere = [cls.__qualname__ for cls in parts if cls is not None and cls.__module__ != module]
    assert not elsewhere, f"{spec.name}: {elsewhere} are not defined in {module}, the module that declares it"


# ----------------------------------------------------------------------------------------------- fixtures


@each_provider
def test_provider_has_a_fixture_folder_whose_readme_names_every_file(spec: ProviderSpec) -> None:
    folder = PROVIDER_FIXTURES / spec.name
    assert folder.is_dir(), f"no fixture folder {folder.relative_to(REPO_ROOT)}"
    readme = folder / "README.md"
    assert readme.is_file(), f"{folder.relative_to(REPO_ROOT)} has no README.md citing its files' sources"
    answers = sorted(path.name for path in folder.iterdir() if path.name != "README.md")
    assert answers, f"{folder.relative_to(REPO_ROOT)} holds no answer file"
    text = readme.read_text(encoding="utf-8")
    unnamed = [name for name in answers if f"`{name}`" not in text]
    assert not unnamed, f"{readme.relative_to(REPO_ROOT)} does not name (in backquotes) {unnamed}"


def test_every_fixture_folder_belongs_to_a_registered_provider() -> None:
    folders = sorted(path.name for path in PROVIDER_FIXTURES.iterdir() if path.is_dir())
    assert set(folders) <= set(NAMES), f"fixture folders of unknown providers: {sorted(set(folders) - set(NAMES))}"


# ----------------------------------------------------------------------------------------------- replay


@each_provider
def test_replay_routes_configures_and_counts_the_provider(spec: ProviderSpec, replay: ReplayServer) -> None:
    assert isinstance(spec.replay, ReplayRoutes), f"{spec.name} declares no replay format"
    assert replayed_providers().get(spec.name) is spec.replay, f"the replay server does not route /{spec.name}/"
    base = replay.base_url(spec.name)
    assert base == f"{replay.url}/{spec.name}"

    env = replay.env()
    under_base = re.compile(rf"(^|,){re.escape(base)}(/|,|$)")
    configured = {variable: env[variable] for variable in variables_of(spec) if variable in env}
    assert any(under_base.search(value) for value in configured.values()), (
        f"ReplayServer().env() points none of {variables_of(spec)} at {base}: {configured}"
    )
    settings = load_settings(env)
    values = [settings.provider_urls.get(spec.name, "")]
    values += [
        ",".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in settings.provider_options[spec.name].values()
    ]
    assert any(under_base.search(value) for value in values), (
        f"the settings built from the replay's env do not send {spec.name} to {base}: {values}"
    )

    before = replay.stats()
    with contextlib.suppress(urllib.error.HTTPError):  # an error status is an answer too
        DIRECT.open(f"{base}/registry-probe", timeout=10).close()
    after = replay.stats()
    assert after[spec.name] == before[spec.name] + 1, f"a request to /{spec.name}/ is not counted in stats()"
    assert {k: v for k, v in after.items() if k != spec.name} == {k: v for k, v in before.items() if k != spec.name}


def test_replay_env_sets_only_registered_provider_variables(replay: ReplayServer) -> None:
    known = {variable for spec in PROVIDERS for variable in variables_of(spec)} | {"CRYPTO_ASSETS_RATE_LIMITS"}
    assert set(replay.env()) <= known, f"unknown variables: {sorted(set(replay.env()) - known)}"


# ----------------------------------------------------------------------------------------------- settings


@each_provider
def test_settings_accept_the_provider_its_url_and_options(spec: ProviderSpec, replay: ReplayServer) -> None:
    env = {KIND_ENV[kind]: spec.name for kind in spec.kinds}
    url = f"http://127.0.0.1:9/{spec.name}"
    if spec.url_env:
        assert spec.url_env == f"CRYPTO_ASSETS_{spec.name.upper()}_URL"
        env[spec.url_env] = url
    replay_env = replay.env()
    for option in spec.options:
        default = option.default
        raw_default = ",".join(map(str, default)) if isinstance(default, tuple | list) else str(default)
        env[option.env] = replay_env.get(option.env, raw_default)

    settings = load_settings(env)
    for kind in spec.kinds:
        assert settings.providers(kind) == (spec.name,)
    if spec.url_env:
        assert settings.provider_urls[spec.name] == url
        with pytest.raises(ConfigError, match=spec.url_env):
            load_settings({spec.url_env: "ftp://nowhere"})
    for option in spec.options:
        assert settings.provider_options[spec.name][option.name] == option.parse(option.env, env[option.env])


@each_provider
def test_settings_refuse_the_provider_under_the_wrong_kind(spec: ProviderSpec) -> None:
    for kind in KINDS:
        if kind in spec.kinds:
            continue
        variable = KIND_ENV[kind]
        with pytest.raises(ConfigError, match=variable) as info:
            load_settings({variable: spec.name})
        assert repr(spec.name) in str(info.value)


# ----------------------------------------------------------------------------------------------- assets


@pytest.fixture(scope="module")
def raw_kinds() -> dict[str, set[str]]:
    from crypto_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    return {kind: set(graph.get(dg.AssetKey(["raw", kind])).kinds) for kind in KINDS}


def test_raw_assets_kinds_are_the_configured_providers(raw_kinds: dict[str, set[str]]) -> None:
    """The UI shows, on raw/prices and raw/news, the providers this deployment calls (the defaults here)."""
    for kind in KINDS:
        assert raw_kinds[kind] == set(registry.default_order(kind)), kind


@each_provider
def test_a_configured_provider_is_a_kind_of_its_raw_asset(spec: ProviderSpec) -> None:
    from crypto_assets.defs.common import provider_kinds

    for kind in KINDS:
        settings = load_settings({KIND_ENV[kind]: spec.name} if kind in spec.kinds else {})
        assert (spec.name in provider_kinds(kind, settings)) == (kind in spec.kinds), (spec.name, kind)


# ----------------------------------------------------------------------------------------------- README


def test_readme_provider_table_is_the_registry_table() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count("<!-- providers:start -->") == 1 and text.count("<!-- providers:end -->") == 1
    match = TABLE.search(text)
    assert match, "README.md has no <!-- providers:start --> ... <!-- providers:end --> block"
    assert match.group(1) == registry.markdown_table(), (
        "README.md's provider table differs from the registry: "
        "paste the output of `.venv/bin/python -m crypto_assets.providers.registry` between the markers"
    )


# ----------------------------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_are_keyless_and_the_contract_examples(kind: str) -> None:
    order = registry.default_order(kind)
    assert not [name for name in order if registry.provider(name).key_required], "a key-only provider is a default"
    assert order == CONTRACT_DEFAULTS[kind]
    assert load_settings({}).providers(kind) == order


@each_provider
def test_key_only_provider_is_skipped_never_built_without_its_key(
    spec: ProviderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    for kind in spec.kinds:
        client_class = spec.price_client if kind == PRICES else spec.news_client
        if not spec.key_required:
            clients, skipped = registry.build_clients(
                kind, [spec.name], urls={}, options={}, keys={}, rate_limited=True
            )
            assert skipped == [] and len(clients) == 1 and isinstance(clients[0], client_class)
            continue
        with monkeypatch.context() as patched:

            def never(*args: object, **kwargs: object) -> None:
                raise AssertionError(f"{spec.name} was built without its key")

            patched.setattr(ProviderSpec, "client", never)
            for keys in ({}, {spec.key_env: None}, {spec.key_env: ""}):
                clients, skipped = registry.build_clients(
                    kind, [spec.name], urls={}, options={}, keys=keys, rate_limited=True
                )
                assert clients == [] and [item.provider for item in skipped] == [spec.name]
                assert isinstance(skipped[0], Skipped) and f"{spec.key_env} is not set" in skipped[0].reason
        clients, skipped = registry.build_clients(
            kind, [spec.name], urls={}, options={}, keys={spec.key_env: "test-key-0123"}, rate_limited=True
        )
        assert skipped == [] and len(clients) == 1 and isinstance(clients[0], client_class)


# ----------------------------------------------------------------------------------------------- spec


@each_provider
def test_spec_documents_the_provider(spec: ProviderSpec) -> None:
    assert spec.title.strip(), "no title"
    assert spec.docs, "no documentation URL"
    for url in spec.docs:
        assert re.match(r"https://[^/\s]+\.[^/\s]+", url), f"documentation URL {url!r} is not https"
    assert spec.public_url == "" or spec.public_url.startswith("https://"), spec.public_url
    assert spec.history.strip(), "no history"
    assert spec.access.strip(), "no access"
    assert spec.rate_limit.published.strip(), "no published rate limit"
    assert spec.rate_limit.per_second > 0 and spec.rate_limit.burst > 0
    if spec.key_required:
        assert spec.key_env and spec.key_env in spec.access, "a key-only provider names its key in access"
