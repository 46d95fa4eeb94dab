"""OKX history-candles client and replay format: paging, limits, error envelopes, unfinished bars.

Bars are the project's real bundled Binance bars (crypto_assets.replay.data), served in OKX's wire format by the
replay server or by the small handler in provider_util.py; answers and errors come from the fixtures in
fixtures/providers/okx (see its README for which are documented and which are built from bundled bars). Only time
is injected. What OKX shares with Bitstamp (a 10-day window from the replay, repeated and shuffled rows, a 429
then the answer, the registry's limiter) is tested over both in test_price_clients_shared.py.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import RateLimiter
from crypto_assets.providers.okx import HISTORY_CANDLES_PATH, PROVIDER, OkxClient
from crypto_assets.providers.prices import distinct_bars
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import provider_fixture
from crypto_assets_tests.provider_util import bundled, make, seen, serve_okx

UTC = dt.UTC
T0 = dt.datetime(2022, 6, 1, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 2, tzinfo=UTC)  # after every bundled bar
HOUR = 3600


# ------------------------------------------------------------------------------------ whole windows, via the replay


def test_okx_replay_with_duplicated_and_shuffled_rows_still_gives_the_exact_window() -> None:
    start, end = T0, T0 + dt.timedelta(days=10)
    with ReplayServer() as server:
        server.set_faults({"corrupt": {"okx": ["duplicates", "out_of_order"]}})
        frame = OkxClient(server.base_url("okx"), rate_limited=False).fetch_hourly("ETH", start, end, now=LATER)
    # sorted; the identical repeats are kept for the failover, which drops them (distinct_bars)
    assert frame["ts"].is_monotonic_increasing and frame["ts"].duplicated().sum() == 10
    pd.testing.assert_frame_equal(distinct_bars(frame), bundled("ETH", start, end, "okx"))


def test_okx_replay_sends_the_running_bar_unconfirmed_and_the_client_drops_it() -> None:
    clock = T0 + dt.timedelta(hours=5, minutes=30)
    with ReplayServer(clock=clock) as server:
        client = OkxClient(server.base_url("okx"), rate_limited=False)
        raw = client.http.get_json(HISTORY_CANDLES_PATH, {"instId": "BTC-USDT", "bar": "1H", "limit": 3})
        # A client whose clock runs ahead of the venue's asks past the running bar: it must still be dropped.
        frame = client.fetch_hourly("BTC", T0, T0 + dt.timedelta(hours=8), now=T0 + dt.timedelta(hours=8))
    assert [row[0] for row in raw["data"]] == [str((int(T0.timestamp()) + h * HOUR) * 1000) for h in (5, 4, 3)]
    assert [row[8] for row in raw["data"]] == ["0", "1", "1"]
    assert list(frame["ts"]) == [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in range(5)]


def test_okx_replay_unknown_instrument_and_bad_parameters() -> None:
    with ReplayServer() as server:
        http = OkxClient(server.base_url("okx"), rate_limited=False).http
        unknown = http.get_json(HISTORY_CANDLES_PATH, {"instId": "ZZZ-USDT", "bar": "1H"})
        with pytest.raises(ProviderError) as bad_bar:
            http.get_json(HISTORY_CANDLES_PATH, {"instId": "BTC-USDT", "bar": "1D"})
        with pytest.raises(ProviderError) as too_many:
            http.get_json(HISTORY_CANDLES_PATH, {"instId": "BTC-USDT", "bar": "1H", "limit": 101})
        with pytest.raises(UnknownSymbolError):
            OkxClient(server.base_url("okx"), rate_limited=False).fetch_hourly("ZZZ", T0, T0 + dt.timedelta(days=1))
    assert unknown == provider_fixture("okx", "error_51001_unknown-instrument.json")
    assert bad_bar.value.status == 400 and '"51000"' in bad_bar.value.body
    assert too_many.value.status == 400


# ------------------------------------------------------------------------------------ paging and parsing


def test_okx_pages_backwards_with_exclusive_after_and_before(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_okx(httpserver)
    start, end = T0, T0 + dt.timedelta(days=10)
    frame = make(OkxClient, httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    requests = seen(httpserver)
    start_ms, end_ms = int(start.timestamp()) * 1000, int(end.timestamp()) * 1000
    assert [(int(r.args["after"]), int(r.args["before"]), r.args["limit"]) for r in requests] == [
        (end_ms, start_ms - 1, "100"),
        (end_ms - 100 * HOUR * 1000, start_ms - 1, "100"),
        (end_ms - 200 * HOUR * 1000, start_ms - 1, "100"),
    ]
    pd.testing.assert_frame_equal(frame, bundled("BTC", start, end, "okx"))


def test_okx_range_is_half_open_and_unstarted_hours_are_not_asked(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_okx(httpserver)
    start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5)
    frame = make(OkxClient, httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert list(frame["ts"]) == [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in range(1, 5)]
    (request,) = seen(httpserver)
    assert int(request.args["after"]) == int(end.timestamp()) * 1000
    assert int(request.args["before"]) == int(start.timestamp()) * 1000 - 1
    # Nothing has closed yet in the range: no request at all.
    now = T0 + dt.timedelta(minutes=30)
    assert make(OkxClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(hours=3), now=now).empty
    assert len(seen(httpserver)) == 1


def test_okx_bundled_answer_fixture_parses_and_drops_the_unconfirmed_bar() -> None:
    client = OkxClient("http://unused.invalid")
    bars, rows = client._parse(provider_fixture("okx", "history-candles_BTC-USDT_2022-06-01_bundled.json"))
    expected = bundled("BTC", T0, T0 + dt.timedelta(hours=5), "okx")
    assert rows == 6
    assert [b[0] for b in bars] == [int(ts.timestamp()) for ts in expected["ts"]]
    assert [b[4] for b in bars] == list(expected["close"])
    assert [b[5] for b in bars] == list(expected["volume"])


def test_okx_documented_example_has_the_documented_shape_but_is_not_an_hourly_bar() -> None:
    """The docs' example rows (ts 1597026383085) are not on an hour: strict hourly parsing names the row."""
    body = provider_fixture("okx", "history-candles_documented-example.json")
    assert body["code"] == "0" and all(len(row) == 9 for row in body["data"])
    with pytest.raises(ProviderError, match=r"time 1597026383085 is not on a whole second"):
        OkxClient("http://unused.invalid")._parse(body)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("status", [200, 400])
def test_okx_51001_is_an_unknown_symbol_with_http_200_or_400(
    httpserver: HTTPServer, fake: FakeTime, status: int
) -> None:
    httpserver.expect_request(HISTORY_CANDLES_PATH).respond_with_data(
        provider_fixture("okx", "error_51001_unknown-instrument.json", raw=True),
        status=status,
        content_type="application/json",
    )
    with pytest.raises(UnknownSymbolError, match="51001") as caught:
        make(OkxClient, httpserver, fake).fetch_hourly("ZZZ", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert "instId=ZZZ-USDT" in caught.value.url
    assert len(seen(httpserver)) == 1  # never retried


def test_okx_parameter_error_with_http_400_is_a_permanent_provider_error(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    httpserver.expect_request(HISTORY_CANDLES_PATH).respond_with_data(
        provider_fixture("okx", "error_51000_parameter_http400.json", raw=True),
        status=400,
        content_type="application/json",
    )
    with pytest.raises(ProviderError, match="error code 51000: Parameter bar error") as caught:
        make(OkxClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert not isinstance(caught.value, UnknownSymbolError)
    assert caught.value.retryable is False
    assert len(seen(httpserver)) == 1


def test_okx_rate_limit_code_with_http_200_is_retried(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request(HISTORY_CANDLES_PATH).respond_with_data(
        provider_fixture("okx", "error_50011_rate-limit_http429.json", raw=True),
        status=200,
        content_type="application/json",
    )
    with pytest.raises(ProviderError, match="50011") as caught:
        make(OkxClient, httpserver, fake, max_attempts=3).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert caught.value.retryable is True
    assert len(seen(httpserver)) == 3


def test_okx_client_rate_limit_stays_inside_20_requests_per_2_seconds() -> None:
    limiter = RateLimiter(PROVIDER.rate_limit.per_second, PROVIDER.rate_limit.burst)
    now, sends = 0.0, []
    for _ in range(200):  # as fast as the limiter lets a client send
        now += limiter.reserve(now)
        sends.append(now)
    busiest = max(sum(1 for t in sends if start <= t < start + 2.0) for start in sends)
    assert busiest <= 20
