"""The middle tier: assets materialized in this process (``dg.materialize``, as the dagster docs projects test
them) on a temporary DuckDB file and an ephemeral Dagster instance, against the replay server serving the
bundled real data. Real runs and real HTTP, without a subprocess or an instance on disk: a second each.

The CLI's own behaviour (pre-flight, summary, exit codes) is covered by the end-to-end tests (marked slow).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from crypto_assets import warehouse as wh
from crypto_assets.defs.features import feature_vectors, technical_indicators
from crypto_assets.defs.ml import training_set
from crypto_assets.defs.news import article_sentiment, raw_news, sentiment_hourly_features
from crypto_assets.defs.prices import raw_prices
from crypto_assets.defs.quality import feature_null_rates, raw_news_checks, raw_prices_checks
from crypto_assets.defs.resources import build_resources
from crypto_assets.replay.data import load_bundled_prices
from crypto_assets.replay.faults import FaultConfig
from crypto_assets.replay.server import ReplayServer

ASSETS = [
    raw_prices,
    raw_news,
    article_sentiment,
    technical_indicators,
    sentiment_hourly_features,
    feature_vectors,
    training_set,
]
CHECKS = [raw_prices_checks, raw_news_checks, feature_null_rates]


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def warehouse(tmp_path: Path, replay: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    replay.set_faults(FaultConfig())
    for name, value in replay.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRYPTO_ASSETS_SYMBOLS", "BTC,ETH")
    path = tmp_path / "crypto.duckdb"
    monkeypatch.setenv("CRYPTO_ASSETS_DUCKDB", str(path))
    return path


def materialize(assets: list, **options: object) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize([*assets], instance=instance, resources=build_resources(), **options)


def rows(path: Path, sql: str) -> pd.DataFrame:
    with wh.connect(path, read_only=True) as conn:
        return conn.execute(sql).df()


def test_one_day_of_every_asset(warehouse: Path) -> None:
    # the day before, for the 24-hour windows' look-back; then the day itself with its checks
    assert materialize(ASSETS, partition_key="2022-05-09").success
    result = materialize([*ASSETS, *CHECKS], partition_key="2022-05-10")
    assert result.success
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations() if evaluation.blocking)
    prices = rows(warehouse, "SELECT symbol, ts, close, provider FROM raw.prices WHERE ts >= '2022-05-10'")
    bundled = load_bundled_prices()
    bundled = bundled[bundled["symbol"].isin(["BTC", "ETH"]) & (bundled["ts"].dt.date.astype(str) == "2022-05-10")]
    assert len(prices) == len(bundled) == 48 and set(prices["provider"]) == {"binance"}
    features = rows(warehouse, "SELECT * FROM features.feature_vectors WHERE ts >= '2022-05-10' ORDER BY symbol, ts")
    assert len(features) == 48
    assert features["news_coverage_24h"].eq(1.0).all() and features["sentiment_mean_24h"].notna().all()
    assert (features["gap_hours_24h"] == 0).all() and (features["venues_24h"] == 1).all()
    assert features["log_return_1h"].notna().all()  # the day before was built: every lag is complete
    assert len(rows(warehouse, "SELECT * FROM ml.training_set")) > 0


def test_a_range_of_days_is_one_run(warehouse: Path) -> None:
    tags = {"dagster/asset_partition_range_start": "2022-05-10", "dagster/asset_partition_range_end": "2022-05-12"}
    result = materialize([raw_prices, raw_news], tags=tags)
    assert result.success
    days = rows(warehouse, "SELECT DISTINCT ts::DATE::VARCHAR AS day FROM raw.prices ORDER BY 1")["day"]
    assert list(days) == ["2022-05-10", "2022-05-11", "2022-05-12"]
    coverage = rows(warehouse, "SELECT status, count(*) AS n FROM raw.price_coverage GROUP BY ALL")
    assert dict(zip(coverage["status"], coverage["n"], strict=True)) == {"complete": 6}


def test_news_down_never_stops_prices_and_leaves_sentiment_unknown(warehouse: Path, replay: ReplayServer) -> None:
    replay.set_faults(FaultConfig(down=["gdelt", "rss"]))
    result = materialize(ASSETS, partition_key="2022-05-10")
    assert result.success
    features = rows(warehouse, "SELECT * FROM features.feature_vectors")
    assert len(features) == 48
    assert features["sentiment_mean_24h"].isna().all() and features["news_coverage_24h"].eq(0).all()
    coverage = rows(warehouse, "SELECT provider, status FROM raw.news_coverage ORDER BY provider")
    assert list(map(tuple, coverage.to_numpy())) == [("gdelt", "failed"), ("rss", "failed")]


def test_a_provider_down_now_keeps_what_it_answered_before(warehouse: Path, replay: ReplayServer) -> None:
    assert materialize([raw_news], partition_key="2022-05-10").success
    before = rows(warehouse, "SELECT article_id FROM raw.news ORDER BY 1")
    replay.set_faults(FaultConfig(down=["gdelt"]))
    result = materialize([raw_news], partition_key="2022-05-10")
    assert result.success
    after = rows(warehouse, "SELECT article_id FROM raw.news ORDER BY 1")
    pd.testing.assert_frame_equal(after, before)
    carried = result.asset_materializations_for_node("raw__news")[-1].metadata["carried_forward"].value
    assert carried == ["gdelt 2022-05-10"]
    statuses = rows(warehouse, "SELECT DISTINCT status FROM raw.news_coverage WHERE provider = 'gdelt'")["status"]
    assert list(statuses) == ["ok"]


def test_a_failed_symbol_day_keeps_its_stored_bars(
    warehouse: Path, replay: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTO_ASSETS_PRICE_PROVIDERS", "binance")  # one provider to wait for while it retries
    assert materialize([raw_prices], partition_key="2022-05-10").success
    replay.set_faults(FaultConfig(down=["binance"]))
    assert materialize([raw_prices], partition_key="2022-05-10").success  # a (symbol, day) fails alone
    assert len(rows(warehouse, "SELECT * FROM raw.prices")) == 48
    coverage = rows(warehouse, "SELECT status, detail FROM raw.price_coverage")
    assert set(coverage["status"]) == {"complete"}  # what is stored is still complete
    assert coverage["detail"].str.contains("got failed").all() and coverage["detail"].str.contains("kept").all()
