"""What the OKX and Bitstamp clients share, each case run against both: a 10-day window served exactly from the
replay, repeated and shuffled rows, a 429 retried then served, and (for every price provider) the registry's
rate limiter.

The local servers speak each provider's wire format over the bundled bars (provider_util.py); the 429 bodies are
each provider's own rate-limit answer from fixtures/providers/<name>. Only time is injected.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from crypto_assets.http import rate_limiter
from crypto_assets.providers import registry
from crypto_assets.providers.bitstamp import BitstampClient
from crypto_assets.providers.okx import HISTORY_CANDLES_PATH, OkxClient
from crypto_assets.providers.prices import BasePriceClient, distinct_bars
from crypto_assets.providers.registry import ProviderSpec
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import provider_fixture
from crypto_assets_tests.provider_util import BITSTAMP_OHLC_RE, bundled, make, seen, serve_bitstamp, serve_okx

UTC = dt.UTC
T0 = dt.datetime(2022, 6, 1, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 2, tzinfo=UTC)  # after every bundled bar


# (client, the path its bars are asked on, its local server, its own rate-limit answer)
CLIENTS = {
    "okx": (OkxClient, HISTORY_CANDLES_PATH, serve_okx, "error_50011_rate-limit_http429.json"),
    "bitstamp": (BitstampClient, BITSTAMP_OHLC_RE, serve_bitstamp, "error_400.002_rate-limit.json"),
}
each_client = pytest.mark.parametrize("name", list(CLIENTS))


@pytest.mark.parametrize(
    ("name", "symbol", "requests"),
    [
        ("okx", "BTC", 3),  # 100 + 100 + 40 rows, paged backwards
        ("okx", "BNB", 3),
        ("bitstamp", "BTC", 1),  # 240 rows: one answer of at most 1000 (Bitstamp does not list BNB)
    ],
)
def test_alone_serves_a_10_day_window_exactly_from_the_replay(name: str, symbol: str, requests: int) -> None:
    cls = CLIENTS[name][0]
    start, end = T0, T0 + dt.timedelta(days=10)
    with ReplayServer() as server:
        frame = cls(server.base_url(name), rate_limited=False).fetch_hourly(symbol, start, end, now=LATER)
        asked = server.stats()[name]
    pd.testing.assert_frame_equal(frame, bundled(symbol, start, end, name))
    assert len(frame) == 240
    assert asked == requests


@each_client
def test_duplicates_and_out_of_order_rows_are_handled_as_every_client_does(
    httpserver: HTTPServer, fake: FakeTime, name: str
) -> None:
    cls, _, serve, _ = CLIENTS[name]

    def mutate(rows: list[Any]) -> list[Any]:
        shuffled = [*rows, rows[3]]  # one row twice
        random.Random(7).shuffle(shuffled)
        return shuffled

    serve(httpserver, mutate=mutate)
    start, end = T0, T0 + dt.timedelta(days=2)
    frame = make(cls, httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert frame["ts"].is_monotonic_increasing and frame["ts"].duplicated().sum() == 1
    pd.testing.assert_frame_equal(distinct_bars(frame), bundled("BTC", start, end, name))


@each_client
def test_429_over_the_published_limit_is_retried_then_served(httpserver: HTTPServer, fake: FakeTime, name: str) -> None:
    cls, path, serve, rate_limited = CLIENTS[name]
    body = provider_fixture(name, rate_limited, raw=True)
    httpserver.expect_ordered_request(path).respond_with_data(body, status=429, content_type="application/json")
    serve(httpserver)
    frame = make(cls, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert len(frame) == 24
    assert len(seen(httpserver)) == 2
    assert len(fake.sleeps) == 1  # one back-off between the 429 and the retry


@pytest.mark.parametrize("spec", registry.providers_of("prices"), ids=lambda spec: spec.name)
def test_a_clients_limiter_is_the_registrys_shared_by_the_process(spec: ProviderSpec) -> None:
    client = spec.price_client("http://127.0.0.1:9")
    assert isinstance(client, BasePriceClient)
    assert (client.http.limiter.rate, client.http.limiter.burst) == (spec.rate_limit.per_second, spec.rate_limit.burst)
    assert client.http.limiter is rate_limiter(spec.name, spec.rate_limit.per_second, spec.rate_limit.burst)
