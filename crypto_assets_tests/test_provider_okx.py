"""OKX history-candles client and replay format: paging, limits, error envelopes, unfinished bars.

Bars are the project's real bundled Binance bars (crypto_assets.replay.data), served in OKX's wire format by the
replay server or by the small handler below; answers and errors come from the fixtures in fixtures/providers/okx
(see its README for which are documented and which are built from bundled bars). Only time is injected.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import HttpClient, RateLimiter
from crypto_assets.providers.okx import HISTORY_CANDLES_PATH, MAX_LIMIT, PROVIDER, OkxClient
from crypto_assets.providers.prices import PRICE_COLUMNS, distinct_bars
from crypto_assets.replay.data import bundled_series, load_bundled_prices
from crypto_assets.replay.server import ReplayServer
from crypto_assets.replay.wire import plain
from crypto_assets_tests.fakes import FakeTime

FIXTURES = Path(__file__).parent / "fixtures" / "providers" / "okx"
UTC = dt.UTC
T0 = dt.datetime(2022, 6, 1, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 2, tzinfo=UTC)  # after every bundled bar
HOUR = 3600


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def make(server: HTTPServer, fake: FakeTime, **http_options) -> OkxClient:
    options = {"rate_per_second": 1000.0, "sleep": fake.sleep, "clock": fake.clock, "rng": random.Random(1)}
    options.update(http_options)
    http = HttpClient("okx", server.url_for("/"), **options)
    return OkxClient(server.url_for("/"), http=http)


def bundled(symbol: str, start: dt.datetime, end: dt.datetime, provider: str) -> pd.DataFrame:
    prices = load_bundled_prices()
    frame = prices[(prices["symbol"] == symbol) & (prices["ts"] >= start) & (prices["ts"] < end)].copy()
    frame["provider"] = provider
    return frame[list(PRICE_COLUMNS)].reset_index(drop=True)


def okx_row(bar: list, confirm: str = "1") -> list[str]:
    t, o, h, low, c, v = bar
    return [str(t * 1000), plain(o), plain(h), plain(low), plain(c), plain(v), plain(v * c), plain(v * c), confirm]


def serve_bundled(server: HTTPServer, symbol: str = "BTC", mutate=None) -> None:
    """OKX's documented paging over the bundled bars: newest first, ts in (before, after), at most ``limit``."""
    series = bundled_series()[symbol]

    def handle(request: Request) -> Response:
        if request.args["instId"] != f"{symbol}-USDT":
            return Response(fixture("error_51001_unknown-instrument.json"), content_type="application/json")
        assert request.args["bar"] == "1H"
        after, before, limit = (int(request.args[k]) for k in ("after", "before", "limit"))
        rows = [okx_row(b) for b in series.bars(before // 1000, after // 1000) if before < b[0] * 1000 < after]
        rows = rows[-min(limit, MAX_LIMIT) :][::-1]
        body = {"code": "0", "msg": "", "data": mutate(rows) if mutate else rows}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request(HISTORY_CANDLES_PATH).respond_with_handler(handle)


def seen(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


# ------------------------------------------------------------------------------------ whole windows, via the replay


@pytest.mark.parametrize("symbol", ["BTC", "BNB"])
def test_okx_alone_serves_a_10_day_window_exactly_from_the_replay(symbol: str) -> None:
    start, end = T0, T0 + dt.timedelta(days=10)
    with ReplayServer() as server:
        client = OkxClient(server.base_url("okx"), rate_limited=False)
        frame = client.fetch_hourly(symbol, start, end, now=LATER)
        requests = server.stats()["okx"]
    pd.testing.assert_frame_equal(frame, bundled(symbol, start, end, "okx"))
    assert len(frame) == 240
    assert requests == 3  # 100 + 100 + 40 rows, paged backwards


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
    assert unknown == json.loads(fixture("error_51001_unknown-instrument.json"))
    assert bad_bar.value.status == 400 and '"51000"' in bad_bar.value.body
    assert too_many.value.status == 400


# ------------------------------------------------------------------------------------ paging and parsing


def test_okx_pages_backwards_with_exclusive_after_and_before(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    start, end = T0, T0 + dt.timedelta(days=10)
    frame = make(httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    requests = seen(httpserver)
    start_ms, end_ms = int(start.timestamp()) * 1000, int(end.timestamp()) * 1000
    assert [(int(r.args["after"]), int(r.args["before"]), r.args["limit"]) for r in requests] == [
        (end_ms, start_ms - 1, "100"),
        (end_ms - 100 * HOUR * 1000, start_ms - 1, "100"),
        (end_ms - 200 * HOUR * 1000, start_ms - 1, "100"),
    ]
    pd.testing.assert_frame_equal(frame, bundled("BTC", start, end, "okx"))


def test_okx_range_is_half_open_and_unstarted_hours_are_not_asked(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=5)
    frame = make(httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert list(frame["ts"]) == [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in range(1, 5)]
    (request,) = seen(httpserver)
    assert int(request.args["after"]) == int(end.timestamp()) * 1000
    assert int(request.args["before"]) == int(start.timestamp()) * 1000 - 1
    # Nothing has closed yet in the range: no request at all.
    now = T0 + dt.timedelta(minutes=30)
    assert make(httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(hours=3), now=now).empty
    assert len(seen(httpserver)) == 1


def test_okx_duplicates_and_out_of_order_rows_are_handled_as_every_client_does(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    def mutate(rows: list[list[str]]) -> list[list[str]]:
        shuffled = [*rows, rows[3]]  # one row twice
        random.Random(7).shuffle(shuffled)
        return shuffled

    serve_bundled(httpserver, mutate=mutate)
    start, end = T0, T0 + dt.timedelta(days=2)
    frame = make(httpserver, fake).fetch_hourly("BTC", start, end, now=LATER)
    assert frame["ts"].is_monotonic_increasing and frame["ts"].duplicated().sum() == 1
    pd.testing.assert_frame_equal(distinct_bars(frame), bundled("BTC", start, end, "okx"))


def test_okx_bundled_answer_fixture_parses_and_drops_the_unconfirmed_bar() -> None:
    client = OkxClient("http://unused.invalid")
    bars, rows = client._parse(json.loads(fixture("history-candles_BTC-USDT_2022-06-01_bundled.json")))
    expected = bundled("BTC", T0, T0 + dt.timedelta(hours=5), "okx")
    assert rows == 6
    assert [b[0] for b in bars] == [int(ts.timestamp()) for ts in expected["ts"]]
    assert [b[4] for b in bars] == list(expected["close"])
    assert [b[5] for b in bars] == list(expected["volume"])


def test_okx_documented_example_has_the_documented_shape_but_is_not_an_hourly_bar() -> None:
    """The docs' example rows (ts 1597026383085) are not on an hour: strict hourly parsing names the row."""
    body = json.loads(fixture("history-candles_documented-example.json"))
    assert body["code"] == "0" and all(len(row) == 9 for row in body["data"])
    with pytest.raises(ProviderError, match=r"time 1597026383085 is not on a whole second"):
        OkxClient("http://unused.invalid")._parse(body)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("status", [200, 400])
def test_okx_51001_is_an_unknown_symbol_with_http_200_or_400(
    httpserver: HTTPServer, fake: FakeTime, status: int
) -> None:
    httpserver.expect_request(HISTORY_CANDLES_PATH).respond_with_data(
        fixture("error_51001_unknown-instrument.json"), status=status, content_type="application/json"
    )
    with pytest.raises(UnknownSymbolError, match="51001") as caught:
        make(httpserver, fake).fetch_hourly("ZZZ", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert "instId=ZZZ-USDT" in caught.value.url
    assert len(seen(httpserver)) == 1  # never retried


def test_okx_parameter_error_with_http_400_is_a_permanent_provider_error(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    httpserver.expect_request(HISTORY_CANDLES_PATH).respond_with_data(
        fixture("error_51000_parameter_http400.json"), status=400, content_type="application/json"
    )
    with pytest.raises(ProviderError, match="error code 51000: Parameter bar error") as caught:
        make(httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert not isinstance(caught.value, UnknownSymbolError)
    assert caught.value.retryable is False
    assert len(seen(httpserver)) == 1


def test_okx_rate_limit_code_with_http_200_is_retried(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request(HISTORY_CANDLES_PATH).respond_with_data(
        fixture("error_50011_rate-limit_http429.json"), status=200, content_type="application/json"
    )
    with pytest.raises(ProviderError, match="50011") as caught:
        make(httpserver, fake, max_attempts=3).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert caught.value.retryable is True
    assert len(seen(httpserver)) == 3


def test_okx_429_over_the_published_limit_is_retried_then_served(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_ordered_request(HISTORY_CANDLES_PATH).respond_with_data(
        fixture("error_50011_rate-limit_http429.json"), status=429, content_type="application/json"
    )
    serve_bundled(httpserver)
    frame = make(httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert len(frame) == 24
    assert len(seen(httpserver)) == 2
    assert len(fake.sleeps) == 1  # one back-off between the 429 and the retry


def test_okx_client_rate_limit_stays_inside_20_requests_per_2_seconds() -> None:
    limiter = RateLimiter(PROVIDER.rate_limit.per_second, PROVIDER.rate_limit.burst)
    now, sends = 0.0, []
    for _ in range(200):  # as fast as the limiter lets a client send
        now += limiter.reserve(now)
        sends.append(now)
    busiest = max(sum(1 for t in sends if start <= t < start + 2.0) for start in sends)
    assert busiest <= 20
    client = OkxClient("http://127.0.0.1:9")  # its limiter is the registry's, shared by the process
    assert (client.http.limiter.rate, client.http.limiter.burst) == (
        PROVIDER.rate_limit.per_second,
        PROVIDER.rate_limit.burst,
    )
