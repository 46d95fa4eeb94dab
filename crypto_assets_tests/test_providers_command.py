"""`crypto-assets providers` and the bootstrap's pre-flight, through the real CLI against the replay server.

The replay server plays each provider's part as it behaves today (FaultConfig: a venue down, one geo-blocked,
CryptoCompare demanding a key); the CLI runs in a subprocess with the server's environment, as a user's would.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from crypto_assets.config import NEWS_PROVIDERS_ENV, PRICE_PROVIDERS_ENV, load_settings
from crypto_assets.preflight import GEO_BLOCKED, STATUSES, probe_provider
from crypto_assets.providers import registry
from crypto_assets.replay.faults import FaultConfig
from crypto_assets_tests.conftest import PipelineEnv

pytestmark = pytest.mark.slow


def test_a_down_venue_a_key_only_provider_and_a_healthy_one_are_told_apart(pipeline_env: PipelineEnv) -> None:
    server = pipeline_env.server
    server.set_faults(FaultConfig(down=["binance"], geo_blocked=["coinbase"], require_keys=["cryptocompare"]))
    env = {k: v for k, v in pipeline_env.env.items() if not k.endswith("_API_KEY")}
    env["CRYPTO_ASSETS_PRICE_PROVIDERS"] = "binance,okx,coinbase,cryptocompare"
    env["CRYPTO_ASSETS_NEWS_PROVIDERS"] = "gdelt,cryptocompare"
    keyless = dataclasses.replace(pipeline_env, env=env)
    done = keyless.run("providers", "--json")
    assert done.returncode == 0, done.stdout + done.stderr  # okx answers prices, gdelt news
    rows = json.loads(done.stdout)
    by = {(row["provider"], row["kind"]): row for row in rows}
    assert {key: row["status"] for key, row in by.items()} == {
        ("binance", "prices"): "unreachable",
        ("okx", "prices"): "ok",
        ("coinbase", "prices"): "geo-blocked",
        ("cryptocompare", "prices"): "needs key",
        ("gdelt", "news"): "ok",
        ("cryptocompare", "news"): "needs key",
    }
    for row in rows:
        assert set(row) >= {"provider", "kind", "status", "latency_ms", "detail"} and row["status"] in STATUSES
    assert by[("cryptocompare", "prices")]["latency_ms"] is None  # never called
    assert server.stats()["cryptocompare"] == 0
    assert "HTTP 503" in by[("binance", "prices")]["detail"]
    assert "HTTP 451" in by[("coinbase", "prices")]["detail"]
    assert "CRYPTOCOMPARE_API_KEY" in by[("cryptocompare", "prices")]["action"]
    assert isinstance(by[("okx", "prices")]["latency_ms"], int)

    table = keyless.run("providers")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["provider", "kind", "status", "latency"]
    assert any(line.split()[:3] == ["coinbase", "prices", "geo-blocked"] for line in lines)


def test_a_failed_probe_names_the_variable_of_its_own_kind(pipeline_env: PipelineEnv) -> None:
    """CryptoCompare serves prices and news: a failed news probe says to edit the news providers, not the price ones."""
    pipeline_env.server.set_faults(FaultConfig(geo_blocked=["cryptocompare"]))
    settings = load_settings(pipeline_env.server.env())
    keys = {"CRYPTOCOMPARE_API_KEY": "test-key-123"}
    spec = registry.provider("cryptocompare")
    for kind, variable, other in (
        (registry.NEWS, NEWS_PROVIDERS_ENV, PRICE_PROVIDERS_ENV),
        (registry.PRICES, PRICE_PROVIDERS_ENV, NEWS_PROVIDERS_ENV),
    ):
        result = probe_provider(spec, kind, settings, keys)
        assert (result.kind, result.status) == (kind, GEO_BLOCKED)
        assert variable in result.action and other not in result.action


def test_exit_1_when_no_price_provider_answers_and_bootstrap_refuses_to_start(pipeline_env: PipelineEnv) -> None:
    pipeline_env.server.set_faults(FaultConfig(down=["binance", "okx", "coinbase", "bitstamp"]))
    done = pipeline_env.run("providers")
    assert done.returncode == 1
    assert [line.split()[2] for line in done.stdout.splitlines()[1:]] == ["unreachable"] * 4 + ["ok", "ok"]

    started = pipeline_env.run("bootstrap", "--start", "2022-05-10", "--end", "2022-05-11", "--symbols", "BTC")
    assert started.returncode == 1
    out = started.stdout
    for provider in ("binance", "okx", "coinbase", "bitstamp"):
        assert f"prices {provider}" in out and "unreachable" in out
    assert "no price provider answers: nothing was started" in out
    assert "bootstrap: " not in out and not pipeline_env.duckdb_path.exists()  # refused before any run or write


def test_exit_1_when_no_news_provider_answers(pipeline_env: PipelineEnv) -> None:
    pipeline_env.server.set_faults(FaultConfig(down=["gdelt", "rss"]))
    done = pipeline_env.run("providers", "--json")
    assert done.returncode == 1
    assert {row["provider"]: row["status"] for row in json.loads(done.stdout) if row["kind"] == "news"} == {
        "gdelt": "unreachable",
        "rss": "unreachable",
    }


def test_every_news_provider_down_prices_land_and_sentiment_is_unknown(pipeline_env: PipelineEnv) -> None:
    """No news provider answers: the bootstrap still lands prices and price features (exit 0, a warning), the
    sentiment features are null and news_coverage_24h is 0 everywhere; with GDELT back, coverage is 1 from the
    second day on (the 24-hour window of the first hours reaches the day before the range)."""
    pipeline, server = pipeline_env, pipeline_env.server
    server.set_faults(FaultConfig(down=["gdelt", "rss"]))
    done = pipeline.run("bootstrap", "--start", "2022-05-10", "--end", "2022-05-12", "--symbols", "BTC,ETH")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "no news provider answers: prices and price features will land" in done.stdout
    assert "no news provider covered 2022-05-10..2022-05-12" in done.stdout
    query = (
        "SELECT count(*) AS n, count(sentiment_mean_24h) AS known, max(news_coverage_24h) AS coverage, "
        "count(log_return_1h) AS returns FROM features.feature_vectors"
    )
    with __import__("duckdb").connect(str(pipeline.duckdb_path), read_only=True) as conn:
        n, known, coverage, returns = conn.execute(query).fetchone()
    assert n == 3 * 24 * 2 and known == 0 and coverage == 0 and returns > 0

    server.set_faults(FaultConfig(down=["rss"]))
    done = pipeline.run("bootstrap", "--start", "2022-05-10", "--end", "2022-05-12", "--symbols", "BTC,ETH")
    assert done.returncode == 0, done.stdout[-3000:]
    with __import__("duckdb").connect(str(pipeline.duckdb_path), read_only=True) as conn:
        second_day_on = conn.execute(
            "SELECT min(news_coverage_24h), count(*) - count(sentiment_mean_24h) FROM features.feature_vectors "
            "WHERE ts >= TIMESTAMPTZ '2022-05-10 23:00:00+00'"
        ).fetchone()
    assert second_day_on == (1.0, 0)
