"""Bitstamp OHLC client and replay format: chunks of 1000 hours, end-wins semantics, 404 for unlisted pairs.

Bars are the project's real bundled Binance bars (crypto_assets.replay.data), served in Bitstamp's wire format by
the replay server or by the small handler below; answers and errors come from fixtures/providers/bitstamp (its
README says which are recorded, documented, or built from bundled bars). Only time is injected.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import HttpClient, RateLimiter
from crypto_assets.providers.bitstamp import MAX_LIMIT, PROVIDER, BitstampClient, ohlc_path
from crypto_assets.providers.prices import PRICE_COLUMNS, distinct_bars, fetch_prices_with_failover
from crypto_assets.replay.data import bundled_series, load_bundled_prices
from crypto_assets.replay.server import ReplayServer
from crypto_assets.replay.wire import money, plain
from crypto_assets_tests.fakes import FakeTime

FIXTURES = Path(__file__).parent / "fixtures" / "providers" / "bitstamp"
UTC = dt.UTC
T0 = dt.datetime(2022, 6, 1, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 2, tzinfo=UTC)
HOUR = 3600
OHLC_RE = re.compile(r"^/api/v2/ohlc/[^/]+/$")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def make(server: HTTPServer, fake: FakeTime, **http_options) -> BitstampClient:
    options = {"rate_per_second": 1000.0, "sleep": fake.sleep, "clock": fake.clock, "rng": random.Random(1)}
    options.update(http_options)
    return BitstampClient(server.url_for("/"), http=HttpClient("bitstamp", server.url_for("/"), **options))


def bundled(symbol: str, start: dt.datetime, end: dt.datetime, provider: str = "bitstamp") -> pd.DataFrame:
    prices = load_bundled_prices()
    frame = prices[(prices["symbol"] == symbol) & (prices["ts"] >= start) & (prices["ts"] < end)].copy()
    frame["provider"] = provider
    return frame[list(PRICE_COLUMNS)].reset_index(drop=True)


def bitstamp_row(bar: list) -> dict[str, str]:
    t, o, h, low, c, v = bar
    return {"timestamp": str(t), "open": plain(o), "high": plain(h), "low": plain(low), "close": plain(c),
            "volume": money(v)}  # fmt: skip


def serve_bundled(server: HTTPServer, mutate=None) -> None:
    """Bitstamp's documented semantics over the bundled BTC bars: with start and end, ``limit`` rows ending at end."""
    series = bundled_series()["BTC"]

    def handle(request: Request) -> Response:
        if request.path != ohlc_path("btcusd"):
            return Response("<html><body><h1>Not Found</h1></body></html>", status=404, content_type="text/html")
        assert request.args["step"] == "3600"
        limit, end = int(request.args["limit"]), int(request.args["end"])
        rows = [bitstamp_row(b) for b in series.bars(-(2**62), end, last=min(limit, MAX_LIMIT))]
        body = {"data": {"pair": "BTC/USD", "ohlc": mutate(rows) if mutate else rows}}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request(OHLC_RE).respond_with_handler(handle)


def seen(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


# ------------------------------------------------------------------------------------ whole windows, via the replay


def test_bitstamp_alone_serves_a_10_day_window_exactly_from_the_replay() -> None:
    start, end = T0, T0 + dt.timedelta(days=10)
    with ReplayServer() as server:
        frame = BitstampClient(server.base_url("bitstamp"), rate_limited=False).fetch_hourly(
            "BTC", start, end, now=LATER
        )
        requests = server.stats()["bitstamp"]
    pd.testing.assert_frame_equal(frame, bundled("BTC", start, end))
    assert requests == 1  # 240 rows: one answer of at most 1000


def test_bitstamp_pages_across_its_1000_row_limit_exactly_from_the_replay() -> None:
    start, end = dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 6, 18, tzinfo=UTC)  # 45 days, 1080 bars
    with ReplayServer() as server:
        server.set_faults({"corrupt": {"bitstamp": ["duplicates", "out_of_order"]}})
        frame = BitstampClient(server.base_url("bitstamp"), rate_limited=False).fetch_hourly(
            "ETH", start, end, now=LATER
        )
        requests = server.stats()["bitstamp"]
    assert frame["ts"].is_monotonic_increasing and len(frame) == 1080 + 45  # the 07:00 bar of each day twice
    pd.testing.assert_frame_equal(distinct_bars(frame), bundled("ETH", start, end))
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
    serve_bundled(httpserver)
    start, end = dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 6, 18, tzinfo=UTC)
    frame = make(httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    s0 = int(start.timestamp())
    assert [(r.args["start"], r.args["end"], r.args["limit"]) for r in seen(httpserver)] == [
        (str(s0), str(s0 + 999 * HOUR), "1000"),
        (str(s0 + 1000 * HOUR), str(s0 + 1079 * HOUR), "80"),
    ]
    assert all(r.args["step"] == "3600" and r.args["exclude_current_candle"] == "true" for r in seen(httpserver))
    pd.testing.assert_frame_equal(frame, bundled("BTC", start, end))


def test_bitstamp_range_is_half_open(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5)
    frame = make(httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert list(frame["ts"]) == [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in range(1, 5)]
    (request,) = seen(httpserver)
    assert (request.args["start"], request.args["end"], request.args["limit"]) == (
        str(int(start.timestamp())),
        str(int(start.timestamp()) + 3 * HOUR),
        "4",
    )


def test_bitstamp_duplicates_and_out_of_order_rows_are_handled_as_every_client_does(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    def mutate(rows: list[dict]) -> list[dict]:
        shuffled = [*rows, rows[5]]
        random.Random(3).shuffle(shuffled)
        return shuffled

    serve_bundled(httpserver, mutate=mutate)
    start, end = T0, T0 + dt.timedelta(days=2)
    frame = make(httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert frame["ts"].is_monotonic_increasing and frame["ts"].duplicated().sum() == 1
    pd.testing.assert_frame_equal(distinct_bars(frame), bundled("BTC", start, end))


def test_bitstamp_bundled_answer_fixture_parses_value_for_value() -> None:
    bars = BitstampClient("http://unused.invalid")._parse(json.loads(fixture("ohlc_btcusd_2022-06-01_bundled.json")))
    expected = bundled("BTC", T0, T0 + dt.timedelta(hours=5))
    assert [b[0] for b in bars] == [int(ts.timestamp()) for ts in expected["ts"]]
    for column, index in (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5)):
        assert [b[index] for b in bars] == list(expected[column])


def test_bitstamp_recorded_one_minute_answer_has_the_shape_but_is_not_hourly() -> None:
    body = json.loads(fixture("ohlc_btcusd_step60_ccxt-recorded.json"))
    assert body["data"]["pair"] == "BTC/USD" and len(body["data"]["ohlc"]) == 3
    with pytest.raises(ProviderError, match="not on the hour"):
        BitstampClient("http://unused.invalid")._parse(body)


# ------------------------------------------------------------------------------------ errors


def test_bitstamp_404_is_an_unknown_pair_whatever_the_body(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request(OHLC_RE).respond_with_data("Not Found", status=404, content_type="text/plain")
    with pytest.raises(UnknownSymbolError, match="unknown pair zzzusd") as caught:
        make(httpserver, fake).fetch_hourly("ZZZ", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert "/api/v2/ohlc/zzzusd/" in caught.value.url
    assert len(seen(httpserver)) == 1


def test_bitstamp_error_body_with_http_200_is_a_permanent_provider_error(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    body = {"status": "error", "reason": "Invalid limit.", "response_code": "400.001"}
    httpserver.expect_request(OHLC_RE).respond_with_json(body)
    with pytest.raises(ProviderError, match=r"error answer 400\.001: Invalid limit\.") as caught:
        make(httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert not caught.value.retryable and not isinstance(caught.value, UnknownSymbolError)
    assert len(seen(httpserver)) == 1


def test_bitstamp_rate_limit_code_with_http_400_is_a_retryable_provider_error(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    httpserver.expect_request(OHLC_RE).respond_with_data(
        fixture("error_400.002_rate-limit.json"), status=400, content_type="application/json"
    )
    with pytest.raises(ProviderError, match=r"400\.002: Request rejected due to exceeded rate limit") as caught:
        make(httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert caught.value.retryable is True and caught.value.status == 400


def test_bitstamp_429_is_retried_then_served(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_ordered_request(OHLC_RE).respond_with_data(
        fixture("error_400.002_rate-limit.json"), status=429, content_type="application/json"
    )
    serve_bundled(httpserver)
    frame = make(httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert len(frame) == 24 and len(seen(httpserver)) == 2


def test_bitstamp_replay_sheds_load_with_its_rate_limit_answer() -> None:
    with ReplayServer() as server:
        server.set_faults({"shed_load": {"bitstamp": 1.0}})
        client = BitstampClient(server.base_url("bitstamp"), rate_limited=False)
        client.http.max_attempts = 2
        client.http.backoff_base = client.http.backoff_max = 0.01
        with pytest.raises(ProviderError, match="HTTP 429") as caught:
            client.fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert caught.value.retryable is True


def test_bitstamp_client_rate_limit_stays_far_inside_the_published_limits() -> None:
    limiter = RateLimiter(PROVIDER.rate_limit.per_second, PROVIDER.rate_limit.burst)
    now, sends = 0.0, []
    for _ in range(3000):
        now += limiter.reserve(now)
        sends.append(now)
    in_ten_minutes = max(sum(1 for t in sends if start <= t < start + 600) for start in sends[::100])
    assert in_ten_minutes <= 10_000
    assert max(sum(1 for t in sends if start <= t < start + 1) for start in sends[::50]) <= 400
    client = BitstampClient("http://127.0.0.1:9")  # its limiter is the registry's, shared by the process
    assert (client.http.limiter.rate, client.http.limiter.burst) == (
        PROVIDER.rate_limit.per_second,
        PROVIDER.rate_limit.burst,
    )
