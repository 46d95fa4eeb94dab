"""Bitstamp OHLC client and replay format: chunks of 1000 hours, end-wins semantics, 404 for unlisted pairs.

Bars are the project's real bundled Binance bars (crypto_assets.replay.data), served in Bitstamp's wire format by
the replay server or by the small handler in provider_util.py; answers and errors come from
fixtures/providers/bitstamp (its README says which are recorded, documented, or built from bundled bars). Only time
is injected. What Bitstamp shares with OKX (a 10-day window from the replay, repeated and shuffled rows, a 429 then
the answer, the registry's limiter) is tested over both in test_price_clients_shared.py.
"""

from __future__ import annotations

import bisect
import datetime as dt

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import RateLimiter
from crypto_assets.providers.bitstamp import PROVIDER, BitstampClient, ohlc_path
from crypto_assets.providers.prices import distinct_bars, fetch_prices_with_failover
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import provider_fixture
from crypto_assets_tests.provider_util import BITSTAMP_OHLC_RE, bundled, make, seen, serve_bitstamp

UTC = dt.UTC
T0 = dt.datetime(2022, 6, 1, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 2, tzinfo=UTC)
HOUR = 3600


# ------------------------------------------------------------------------------------ whole windows, via the replay


def test_bitstamp_pages_across_its_1000_row_limit_exactly_from_the_replay() -> None:
    start, end = dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 6, 18, tzinfo=UTC)  # 45 days, 1080 bars
    with ReplayServer() as server:
        server.set_faults({"corrupt": {"bitstamp": ["duplicates", "out_of_order"]}})
        frame = BitstampClient(server.base_url("bitstamp"), rate_limited=False).fetch_hourly(
            "ETH", start, end, now=LATER
        )
        requests = server.stats()["bitstamp"]
    assert frame["ts"].is_monotonic_increasing and len(frame) == 1080 + 45  # the 07:00 bar of each day twice
    pd.testing.assert_frame_equal(distinct_bars(frame), bundled("ETH", start, end, "bitstamp"))
    assert requests == 2  # 1000 + 80


def test_bitstamp_does_not_list_bnb_and_failover_moves_on_after_one_request() -> None:
    with ReplayServer() as server:
        client = BitstampClient(server.base_url("bitstamp"), rate_limited=False)
        with pytest.raises(UnknownSymbolError, match="unknown pair bnbusd: HTTP 404"):
            client.fetch_hourly("BNB", T0, T0 + dt.timedelta(days=3), now=LATER)
        days = [(T0 + dt.timedelta(days=i)).date() for i in range(3)]
        result = fetch_prices_with_failover("BNB", days, [client], now=LATER)
        requests = server.stats()["bitstamp"]
    assert requests == 2  # one for the direct call, one for the whole failover run (no bisecting)
    # a definite "not listed" answer: no data, not a failure a re-run could fix
    assert result.failed_days == {} and result.with_status("no_data") == days
    assert all("bitstamp: not listed" in o.detail and "HTTP 404" in o.detail for o in result.days.values())


def test_bitstamp_replay_uses_end_when_start_and_end_are_both_posted() -> None:
    t0 = int(T0.timestamp())
    with ReplayServer() as server:
        http = BitstampClient(server.base_url("bitstamp"), rate_limited=False).http
        body = http.get_json(ohlc_path("btcusd"), {"step": 3600, "limit": 3, "start": t0 - 50 * HOUR, "end": t0})
        only_start = http.get_json(ohlc_path("btcusd"), {"step": 3600, "limit": 2, "start": t0})
        with pytest.raises(ProviderError) as bad_limit:
            http.get_json(ohlc_path("btcusd"), {"step": 3600, "limit": 1001, "end": t0})
        with pytest.raises(ProviderError) as bad_step:
            http.get_json(ohlc_path("btcusd"), {"step": 7, "limit": 10, "end": t0})
    assert [row["timestamp"] for row in body["data"]["ohlc"]] == [str(t0 - 2 * HOUR), str(t0 - HOUR), str(t0)]
    assert body["data"]["pair"] == "BTC/USD"
    assert [row["timestamp"] for row in only_start["data"]["ohlc"]] == [str(t0), str(t0 + HOUR)]
    assert bad_limit.value.status == 400 and bad_step.value.status == 400


def test_bitstamp_replay_excludes_the_running_candle_when_asked() -> None:
    clock = T0 + dt.timedelta(hours=5, minutes=30)
    with ReplayServer(clock=clock) as server:
        http = BitstampClient(server.base_url("bitstamp"), rate_limited=False).http
        with_current = http.get_json(ohlc_path("btcusd"), {"step": 3600, "limit": 2})
        without = http.get_json(ohlc_path("btcusd"), {"step": 3600, "limit": 2, "exclude_current_candle": "true"})
    t0 = int(T0.timestamp())
    assert [r["timestamp"] for r in with_current["data"]["ohlc"]] == [str(t0 + 4 * HOUR), str(t0 + 5 * HOUR)]
    assert [r["timestamp"] for r in without["data"]["ohlc"]] == [str(t0 + 3 * HOUR), str(t0 + 4 * HOUR)]


# ------------------------------------------------------------------------------------ paging and parsing


def test_bitstamp_asks_chunks_of_at_most_1000_hours_with_end_matching_limit(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    serve_bitstamp(httpserver)
    start, end = dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 6, 18, tzinfo=UTC)
    frame = make(BitstampClient, httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    s0 = int(start.timestamp())
    assert [(r.args["start"], r.args["end"], r.args["limit"]) for r in seen(httpserver)] == [
        (str(s0), str(s0 + 999 * HOUR), "1000"),
        (str(s0 + 1000 * HOUR), str(s0 + 1079 * HOUR), "80"),
    ]
    assert all(r.args["step"] == "3600" and r.args["exclude_current_candle"] == "true" for r in seen(httpserver))
    pd.testing.assert_frame_equal(frame, bundled("BTC", start, end, "bitstamp"))


def test_bitstamp_range_is_half_open(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bitstamp(httpserver)
    start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5)
    frame = make(BitstampClient, httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert list(frame["ts"]) == [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in range(1, 5)]
    (request,) = seen(httpserver)
    assert (request.args["start"], request.args["end"], request.args["limit"]) == (
        str(int(start.timestamp())),
        str(int(start.timestamp()) + 3 * HOUR),
        "4",
    )


def test_bitstamp_bundled_answer_fixture_parses_value_for_value() -> None:
    bars = BitstampClient("http://unused.invalid")._parse(
        provider_fixture("bitstamp", "ohlc_btcusd_2022-06-01_bundled.json")
    )
    expected = bundled("BTC", T0, T0 + dt.timedelta(hours=5), "bitstamp")
    assert [b[0] for b in bars] == [int(ts.timestamp()) for ts in expected["ts"]]
    for column, index in (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5)):
        assert [b[index] for b in bars] == list(expected[column])


def test_bitstamp_recorded_one_minute_answer_has_the_shape_but_is_not_hourly() -> None:
    body = provider_fixture("bitstamp", "ohlc_btcusd_step60_ccxt-recorded.json")
    assert body["data"]["pair"] == "BTC/USD" and len(body["data"]["ohlc"]) == 3
    with pytest.raises(ProviderError, match="not on the hour"):
        BitstampClient("http://unused.invalid")._parse(body)


# ------------------------------------------------------------------------------------ errors


def test_bitstamp_404_is_an_unknown_pair_whatever_the_body(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request(BITSTAMP_OHLC_RE).respond_with_data("Not Found", status=404, content_type="text/plain")
    with pytest.raises(UnknownSymbolError, match="unknown pair zzzusd") as caught:
        make(BitstampClient, httpserver, fake).fetch_hourly("ZZZ", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert "/api/v2/ohlc/zzzusd/" in caught.value.url
    assert len(seen(httpserver)) == 1


def test_bitstamp_error_body_with_http_200_is_a_permanent_provider_error(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    body = {"status": "error", "reason": "Invalid limit.", "response_code": "400.001"}
    httpserver.expect_request(BITSTAMP_OHLC_RE).respond_with_json(body)
    with pytest.raises(ProviderError, match=r"error answer 400\.001: Invalid limit\.") as caught:
        make(BitstampClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert not caught.value.retryable and not isinstance(caught.value, UnknownSymbolError)
    assert len(seen(httpserver)) == 1


def test_bitstamp_rate_limit_code_with_http_400_is_a_retryable_provider_error(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    httpserver.expect_request(BITSTAMP_OHLC_RE).respond_with_data(
        provider_fixture("bitstamp", "error_400.002_rate-limit.json", raw=True),
        status=400,
        content_type="application/json",
    )
    with pytest.raises(ProviderError, match=r"400\.002: Request rejected due to exceeded rate limit") as caught:
        make(BitstampClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert caught.value.retryable is True and caught.value.status == 400


def test_bitstamp_replay_sheds_load_with_its_rate_limit_answer() -> None:
    with ReplayServer() as server:
        server.set_faults({"shed_load": {"bitstamp": 1.0}})
        client = BitstampClient(server.base_url("bitstamp"), rate_limited=False)
        client.http.max_attempts = 2
        client.http.backoff_base = client.http.backoff_max = 0.01
        with pytest.raises(ProviderError, match="HTTP 429") as caught:
            client.fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert caught.value.retryable is True


def busiest(sends: list[float], seconds: float) -> int:
    """The most sends (sorted times) in any window of ``seconds`` starting at a send."""
    return max(bisect.bisect_left(sends, start + seconds) - i for i, start in enumerate(sends))


def test_bitstamp_client_rate_limit_stays_far_inside_the_published_limits() -> None:
    """400 requests a second and 10,000 per 10 minutes: the limiter's bound for any window (its burst, then its
    rate) stays inside both, and a client sending as fast as the limiter lets it (more than 10,000 requests, over
    more than 10 minutes) never puts more than that in any 10-minute or one-second window."""
    rate, burst = PROVIDER.rate_limit.per_second, PROVIDER.rate_limit.burst
    assert burst + rate * 600 <= 10_000 and burst + rate * 1 <= 400
    limiter = RateLimiter(rate, burst)
    now, sends = 0.0, []
    # more than 10,000 sends over more than 10 minutes: a limiter letting more through per 10 minutes would show it
    while len(sends) <= 10_000 or now < 1200:
        now += limiter.reserve(now)
        sends.append(now)
    assert busiest(sends, 600) <= 10_000
    assert busiest(sends, 1) <= 400
