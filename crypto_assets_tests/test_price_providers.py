"""Price clients and failover against a local HTTP server speaking each provider's API.

The bars are real (Binance BTC/USDT hourly, 2022-05-04 onwards, see fixtures/slices/README.md);
the small server-side functions below re-serve them in each provider's own row layout, paging and
error conventions, and the recorded answers of fixtures/providers/<name>/ are served verbatim. Only time
is injected.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.errors import ConfigError, ProviderError, UnknownSymbolError
from crypto_assets.providers import registry
from crypto_assets.providers.binance import BinanceClient
from crypto_assets.providers.coinbase import CoinbaseClient
from crypto_assets.providers.cryptocompare import CryptoCompareClient
from crypto_assets.providers.kraken import KrakenClient
from crypto_assets.providers.prices import PRICE_COLUMNS, FailoverResult, fetch_prices_with_failover
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import CC_ERRORS, SLICES, provider_fixture
from crypto_assets_tests.provider_util import make, seen

with gzip.open(SLICES / "BTC_USDT-1h_first1500.json.gz", "rt") as fh:
    BARS: list[list[float]] = json.load(fh)  # [open_ms, open, high, low, close, volume]
UTC = dt.UTC
T0 = dt.datetime(2022, 5, 4, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 1, tzinfo=UTC)  # a "now" after every bar
SECRET = "cc-KEY-9f8e7d6c5b4a"
HOUR_MS = 3_600_000


def served_days(result: FailoverResult) -> dict[str, int]:
    """Days served per provider."""
    counts: dict[str, int] = {}
    for outcome in result.days.values():
        if outcome.provider:
            counts[outcome.provider] = counts.get(outcome.provider, 0) + 1
    return counts


def ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def json_response(body, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")


def expected_frame(bars: list[list[float]], provider: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": "BTC",
            "ts": pd.to_datetime([b[0] for b in bars], unit="ms", utc=True).astype("datetime64[ns, UTC]"),
            "open": [float(b[1]) for b in bars],
            "high": [float(b[2]) for b in bars],
            "low": [float(b[3]) for b in bars],
            "close": [float(b[4]) for b in bars],
            "volume": [float(b[5]) for b in bars],
            "provider": provider,
        }
    )


# --------------------------------------------------------------------------------------------- provider servers


def binance_row(bar: list[float]) -> list:
    t, o, h, lo, c, v = bar
    # quote volume / trade counts are not in the recorded bars: filled with derived or zero values
    return [
        t,
        f"{o:.8f}",
        f"{h:.8f}",
        f"{lo:.8f}",
        f"{c:.8f}",
        f"{v:.8f}",
        t + HOUR_MS - 1,
        f"{v * c:.8f}",
        0,
        "0",
        "0",
        "0",
    ]


def serve_binance(server: HTTPServer, bars: list[list[float]], mutate=None) -> None:
    def handle(request: Request) -> Response:
        if request.args["symbol"] != "BTCUSDT":
            return Response('{"code":-1121,"msg":"Invalid symbol."}', status=400, content_type="application/json")
        assert request.args["interval"] == "1h"
        start, end, limit = (int(request.args[k]) for k in ("startTime", "endTime", "limit"))
        rows = [binance_row(b) for b in bars if start <= b[0] <= end][: min(limit, 1000)]
        return json_response(mutate(rows) if mutate else rows)

    server.expect_request("/api/v3/klines").respond_with_handler(handle)


def coinbase_time(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def serve_coinbase(server: HTTPServer, bars: list[list[float]], mutate=None) -> None:
    def handle(request: Request) -> Response:
        if request.path != "/products/BTC-USD/candles":
            return json_response({"message": "NotFound"}, status=404)
        assert request.args["granularity"] == "3600"
        start, end = coinbase_time(request.args["start"]), coinbase_time(request.args["end"])
        if (end - start) // 3600 + 1 > 300:
            return json_response({"message": "granularity too small for the requested time range"}, status=400)
        rows = [[b[0] // 1000, b[3], b[2], b[1], b[4], b[5]] for b in bars if start <= b[0] // 1000 <= end]
        rows.reverse()  # newest first
        return json_response(mutate(rows) if mutate else rows)

    server.expect_request(re.compile(r"^/products/[^/]+/candles$")).respond_with_handler(handle)


def serve_cryptocompare(server: HTTPServer, bars: list[list[float]], *, key: str | None = None) -> None:
    by_time = {b[0] // 1000: b for b in bars}

    def handle(request: Request) -> Response:
        if key is not None:
            assert request.headers.get("authorization") == f"Apikey {key}"
        fsym = request.args["fsym"]
        if fsym != "BTC":
            message = f"cccagg_or_exchange market does not exist for this coin pair ({fsym}-USD)"
            return json_response({"Response": "Error", "Message": message, "HasWarning": False, "Type": 2, "Data": {}})
        to_ts, limit = int(request.args["toTs"]), int(request.args["limit"])
        rows = []
        for t in range(to_ts - limit * 3600, to_ts + 1, 3600):
            b = by_time.get(t)
            values = (b[1], b[2], b[3], b[4], b[5], b[5] * b[4]) if b else (0, 0, 0, 0, 0, 0)  # zeros: no data yet
            o, h, lo, c, vf, vt = values
            rows.append({"time": t, "high": h, "low": lo, "open": o, "volumefrom": vf, "volumeto": vt, "close": c})
        data = {"Aggregated": False, "TimeFrom": rows[0]["time"], "TimeTo": rows[-1]["time"], "Data": rows}
        return json_response({"Response": "Success", "Message": "", "HasWarning": False, "Type": 100, "Data": data})

    server.expect_request("/data/v2/histohour").respond_with_handler(handle)


def serve_kraken(server: HTTPServer, bars: list[list[float]]) -> None:
    """Kraken keeps only the latest 720 bars; the newest one is the unfinished bar (after ``last``)."""
    kept = bars[-720:]

    def handle(request: Request) -> Response:
        if request.args["pair"] != "XBTUSD":
            return json_response({"error": ["EQuery:Unknown asset pair"]})
        assert request.args["interval"] == "60"
        since = int(request.args["since"])
        rows = [
            [b[0] // 1000, f"{b[1]:.1f}", f"{b[2]:.1f}", f"{b[3]:.1f}", f"{b[4]:.1f}", f"{b[4]:.1f}", f"{b[5]:.8f}", 1]
            for b in kept
            if b[0] // 1000 > since
        ]
        return json_response({"error": [], "result": {"XXBTZUSD": rows, "last": kept[-2][0] // 1000}})

    server.expect_request("/0/public/OHLC").respond_with_handler(handle)


# --------------------------------------------------------------------------------------------- Binance


def test_binance_pages_1500_bars_in_two_requests(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, BARS)
    client = make(BinanceClient, httpserver, fake)
    end = dt.datetime.fromtimestamp(BARS[-1][0] / 1000 + 3600, UTC)
    frame = client.fetch_hourly("BTC", T0, end, now=LATER)
    requests = seen(httpserver)
    assert len(requests) == 2
    assert int(requests[0].args["startTime"]) == ms(T0) and requests[0].args["limit"] == "1000"
    assert int(requests[1].args["startTime"]) == BARS[1000][0]
    assert int(requests[1].args["endTime"]) == ms(end) - 1
    assert list(frame.columns) == list(PRICE_COLUMNS)
    pd.testing.assert_frame_equal(frame, expected_frame(BARS, "binance"))


def test_binance_drops_unfinished_bar_and_does_not_ask_for_it(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, BARS)
    now = T0 + dt.timedelta(hours=5, minutes=30)
    frame = make(BinanceClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=now)
    assert list(frame["ts"]) == [pd.Timestamp(T0) + pd.Timedelta(hours=h) for h in range(5)]
    assert int(seen(httpserver)[0].args["endTime"]) == ms(T0 + dt.timedelta(hours=5)) - 1
    # nothing finished yet in the range: no request at all
    assert make(BinanceClient, httpserver, fake).fetch_hourly("BTC", now, now + dt.timedelta(hours=3), now=now).empty
    assert len(seen(httpserver)) == 1


def test_binance_range_is_half_open_and_repeats_are_left_to_the_failover(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    def shuffle_and_duplicate(rows):
        dup = list(rows[1])
        dup[4] = "1.00000000"  # a second, different answer for the same hour
        return [rows[2], rows[1], rows[0], dup]

    serve_binance(httpserver, BARS[:3], mutate=shuffle_and_duplicate)
    frame = make(BinanceClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(hours=3), now=LATER)
    # sorted, and both answers for 01:00 kept: the client never picks one silently
    assert frame["ts"].is_monotonic_increasing and len(frame) == 4
    assert sorted(frame.loc[frame["ts"] == pd.Timestamp(T0) + pd.Timedelta(hours=1), "close"]) == [1.0, BARS[1][4]]
    httpserver.clear()
    serve_binance(httpserver, BARS[:3])
    frame = make(BinanceClient, httpserver, fake).fetch_hourly(
        "BTC", T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2), now=LATER
    )
    assert frame["ts"].tolist() == [pd.Timestamp(T0) + pd.Timedelta(hours=1)]


@pytest.mark.parametrize("junk", ["abc", "", None, True])
def test_binance_junk_price_names_the_row(httpserver: HTTPServer, fake: FakeTime, junk) -> None:
    def spoil(rows):
        rows[2][4] = junk
        return rows

    serve_binance(httpserver, BARS[:5], mutate=spoil)
    with pytest.raises(ProviderError) as info:
        make(BinanceClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(hours=5), now=LATER)
    assert f"close {junk!r} is not a number in row at index 2: [{BARS[2][0]}" in str(info.value)
    assert "/api/v3/klines?symbol=BTCUSDT" in info.value.url
    assert not info.value.retryable and len(seen(httpserver)) == 1


def test_binance_wrong_row_shape(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, BARS[:5], mutate=lambda rows: [*rows[:3], {"t": 1}, *rows[4:]])
    with pytest.raises(ProviderError, match=r"unexpected row shape at index 3: \{'t': 1\}"):
        make(BinanceClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(hours=5), now=LATER)


def test_binance_recorded_sample_is_parsed_strictly(httpserver: HTTPServer, fake: FakeTime) -> None:
    """The recorded testnet body is a 1-minute kline: rejected as not hourly instead of mis-stored."""
    body = provider_fixture("binance", "klines_BTCUSDT_1m_testnet-recorded.json", raw=True)
    headers = provider_fixture("binance", "klines_BTCUSDT_1m_testnet-recorded_headers.json")
    httpserver.expect_request("/api/v3/klines").respond_with_data(
        body, content_type="application/json", headers=headers
    )
    start = dt.datetime(2021, 6, 24, 18, tzinfo=UTC)
    with pytest.raises(ProviderError, match=r"bar time 1624559520 is not on the hour in row at index 0"):
        make(BinanceClient, httpserver, fake).fetch_hourly("BTC", start, start + dt.timedelta(hours=2), now=LATER)


def test_binance_unknown_symbol(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, BARS)
    with pytest.raises(UnknownSymbolError, match=r"unknown symbol NOPEUSDT: Invalid symbol. \(HTTP 400\)") as info:
        make(BinanceClient, httpserver, fake).fetch_hourly("NOPE", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert info.value.provider == "binance" and len(seen(httpserver)) == 1


def test_malformed_symbol_refused_before_any_request(httpserver: HTTPServer, fake: FakeTime) -> None:
    with pytest.raises(ConfigError):
        make(BinanceClient, httpserver, fake).fetch_hourly("b@d", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert seen(httpserver) == []


# --------------------------------------------------------------------------------------------- Coinbase


def test_coinbase_pages_500_bars_in_two_requests(httpserver: HTTPServer, fake: FakeTime) -> None:
    bars = BARS[:500]
    serve_coinbase(httpserver, bars)
    end = T0 + dt.timedelta(hours=500)
    frame = make(CoinbaseClient, httpserver, fake).fetch_hourly("BTC", T0, end, now=LATER)
    requests = seen(httpserver)
    assert [(r.args["start"], r.args["end"]) for r in requests] == [
        ("2022-05-04T00:00:00Z", "2022-05-16T11:00:00Z"),
        ("2022-05-16T12:00:00Z", "2022-05-24T19:00:00Z"),
    ]
    pd.testing.assert_frame_equal(frame, expected_frame(bars, "coinbase"))


def test_coinbase_recorded_candle_column_order(httpserver: HTTPServer, fake: FakeTime) -> None:
    body = provider_fixture("coinbase", "candles_BTC-USDT_1h_ccxt-recorded.json")  # [[time, low, high, open, ...]]
    httpserver.expect_request("/products/BTC-USD/candles").respond_with_json(body)
    start = dt.datetime.fromtimestamp(body[0][0], UTC)
    now = dt.datetime(2024, 6, 1, tzinfo=UTC)
    frame = make(CoinbaseClient, httpserver, fake).fetch_hourly("BTC", start, start + dt.timedelta(hours=1), now=now)
    row = frame.iloc[0]
    assert (row.open, row.high, row.low, row.close, row.volume) == (73243.33, 73402.47, 73241.5, 73370.65, 1.56794406)
    assert row.ts == pd.Timestamp(start)


def test_coinbase_hours_without_trades_are_absent(httpserver: HTTPServer, fake: FakeTime) -> None:
    bars = [b for i, b in enumerate(BARS[:24]) if i not in (5, 6, 17)]
    serve_coinbase(httpserver, bars)
    frame = make(CoinbaseClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert len(frame) == 21
    pd.testing.assert_frame_equal(frame, expected_frame(bars, "coinbase"))


def test_coinbase_unknown_product_and_wrong_shape(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_coinbase(httpserver, BARS[:24], mutate=lambda rows: [*rows[:4], rows[4][:5], *rows[5:]])
    client = make(CoinbaseClient, httpserver, fake)
    with pytest.raises(UnknownSymbolError, match=r"unknown product NOPE-USD: NotFound \(HTTP 404\)"):
        client.fetch_hourly("NOPE", T0, T0 + dt.timedelta(days=1), now=LATER)
    with pytest.raises(ProviderError, match=r"unexpected row shape at index 4: \[1651"):
        client.fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)


# --------------------------------------------------------------------------------------------- CryptoCompare


def test_cryptocompare_recorded_body(httpserver: HTTPServer, fake: FakeTime) -> None:
    body = provider_fixture("cryptocompare", "histohour_BTC-USD_recorded-2-rows.json")
    httpserver.expect_request("/data/v2/histohour").respond_with_json(body)
    start = dt.datetime.fromtimestamp(body["Data"][0]["time"], UTC)
    frame = make(CryptoCompareClient, httpserver, fake).fetch_hourly(
        "BTC", start, start + dt.timedelta(hours=2), now=LATER.replace(year=2026, month=6)
    )
    assert frame["close"].tolist() == [90341.35, 89730.38]
    assert frame["volume"].tolist() == [3748.45, 2325.23]  # volumefrom: base-asset volume
    args = seen(httpserver)[0].args
    assert (args["fsym"], args["tsym"], args["limit"], args["toTs"]) == (
        "BTC",
        "USD",
        "1",
        str(body["Data"][1]["time"]),
    )


def test_cryptocompare_pages_backwards_and_skips_pre_listing_zeros(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_cryptocompare(httpserver, BARS, key=SECRET)
    client = make(CryptoCompareClient, httpserver, fake, api_key=SECRET)
    client.limit = 600  # the real limit is 2000; a smaller one pages the 1,500 recorded bars
    start = T0 - dt.timedelta(days=2)  # before the first recorded bar: the server answers zeros there
    end = dt.datetime.fromtimestamp(BARS[-1][0] / 1000 + 3600, UTC)
    frame = client.fetch_hourly("BTC", start, end, now=LATER)
    pd.testing.assert_frame_equal(frame, expected_frame(BARS, "cryptocompare"))
    requests = seen(httpserver)
    assert len(requests) == 3
    assert [int(r.args["toTs"]) for r in requests] == [
        BARS[-1][0] // 1000,
        BARS[-1][0] // 1000 - 601 * 3600,
        BARS[-1][0] // 1000 - 2 * 601 * 3600,
    ]
    assert all(SECRET not in r.url for r in requests)


@pytest.mark.parametrize("example", CC_ERRORS, ids=lambda e: e["Message"][:20])
def test_cryptocompare_error_envelope(httpserver: HTTPServer, fake: FakeTime, example: dict) -> None:
    httpserver.expect_request("/data/v2/histohour").respond_with_json(example)
    with pytest.raises(ProviderError) as info:
        make(CryptoCompareClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert not isinstance(info.value, UnknownSymbolError)
    assert f"error response: {example['Message']}" in str(info.value)
    assert len(seen(httpserver)) == 1 and not info.value.retryable


def test_cryptocompare_documented_401_without_a_key(httpserver: HTTPServer, fake: FakeTime) -> None:
    """Since the free tier ended, a request without a key answers 401 ``{"Err":...}``: one request, not retried."""
    body = provider_fixture("cryptocompare", "error_api-key-required_http401_documented.json", raw=True)
    httpserver.expect_request("/data/v2/histohour").respond_with_data(body, status=401, content_type="application/json")
    with pytest.raises(ProviderError) as info:
        make(CryptoCompareClient, httpserver, fake).fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert "HTTP 401" in str(info.value) and "API key required" in str(info.value)
    assert not info.value.retryable and len(seen(httpserver)) == 1
    # the replay answers a keyless request (--require-keys) with the same documented body
    unauthorized = registry.provider("cryptocompare").replay.unauthorized()
    assert unauthorized.status == 401 and json.loads(unauthorized.body) == json.loads(body)


def test_cryptocompare_unknown_symbol_and_rate_limit(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_cryptocompare(httpserver, BARS)
    client = make(CryptoCompareClient, httpserver, fake)
    with pytest.raises(UnknownSymbolError, match="market does not exist for this coin pair"):
        client.fetch_hourly("NOPE", T0, T0 + dt.timedelta(days=1), now=LATER)

    httpserver.clear()
    limited = {"Response": "Error", "Message": "You are over your rate limit please upgrade your account!", "Data": {}}
    httpserver.expect_ordered_request("/data/v2/histohour").respond_with_json(limited)
    serve_cryptocompare(httpserver, BARS)
    frame = client.fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    assert len(frame) == 24 and client.http.stats()["retries"] == 1


def test_cryptocompare_api_key_never_in_url_or_errors(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/data/v2/histohour").respond_with_data(f"upstream error for {SECRET}", status=503)
    client = make(CryptoCompareClient, httpserver, fake, api_key=SECRET, max_attempts=2)
    with pytest.raises(ProviderError) as info:
        client.fetch_hourly("BTC", T0, T0 + dt.timedelta(days=1), now=LATER)
    request = seen(httpserver)[0]
    assert request.headers["authorization"] == f"Apikey {SECRET}" and SECRET not in request.url
    assert SECRET not in str(info.value) and "***" in str(info.value)


# --------------------------------------------------------------------------------------------- Kraken


def test_kraken_recorded_rows_drop_the_uncommitted_bar(httpserver: HTTPServer, fake: FakeTime) -> None:
    sample = provider_fixture("kraken", "ohlc_XBTUSD_60_ccxt-recorded-partial.json")
    httpserver.expect_request("/0/public/OHLC").respond_with_json(
        {"error": [], "result": {"XXBTZUSD": sample["rows"], "last": int(sample["last"])}}
    )
    start = dt.datetime.fromtimestamp(sample["rows"][0][0], UTC)
    now = dt.datetime(2024, 2, 3, tzinfo=UTC)
    frame = make(KrakenClient, httpserver, fake).fetch_hourly("BTC", start, now, now=now)
    assert frame["ts"].tolist() == [pd.Timestamp(r[0], unit="s", tz="UTC") for r in sample["rows"][:2]]
    assert frame["close"].tolist() == [43386.6, 43539.7]
    assert frame["volume"].tolist() == [81.88339686, 10.82796308]
    args = seen(httpserver)[0].args
    assert (args["pair"], args["interval"], args["since"]) == ("XBTUSD", "60", str(sample["rows"][0][0] - 1))


def test_kraken_only_latest_720_bars_exist(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_kraken(httpserver, BARS)
    now = dt.datetime.fromtimestamp(BARS[-1][0] / 1000 + 1800, UTC)  # the newest bar is half done
    frame = make(KrakenClient, httpserver, fake).fetch_hourly("BTC", T0, now, now=now)
    assert len(seen(httpserver)) == 1
    pd.testing.assert_frame_equal(
        frame, expected_frame([[b[0], *(round(x, 1) for x in b[1:5]), b[5]] for b in BARS[-720:-1]], "kraken")
    )


def test_kraken_errors(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_kraken(httpserver, BARS)
    client = make(KrakenClient, httpserver, fake)
    with pytest.raises(UnknownSymbolError, match="EQuery:Unknown asset pair"):
        client.fetch_hourly("NOPE", T0, T0 + dt.timedelta(days=1), now=LATER)
    httpserver.clear()
    httpserver.expect_ordered_request("/0/public/OHLC").respond_with_json({"error": ["EService:Unavailable"]})
    serve_kraken(httpserver, BARS)
    start = dt.datetime.fromtimestamp(BARS[-30][0] / 1000, UTC)
    assert len(client.fetch_hourly("BTC", start, LATER, now=LATER)) == 29  # BARS[-30:-1]: the newest is unfinished
    assert client.http.stats()["retries"] == 1
    httpserver.clear()
    httpserver.expect_request("/0/public/OHLC").respond_with_json({"error": ["EGeneral:Invalid arguments"]})
    with pytest.raises(ProviderError, match="error response: EGeneral:Invalid arguments"):
        client.fetch_hourly("BTC", start, LATER, now=LATER)


# --------------------------------------------------------------------------------------------- failover

DAYS = [dt.date(2022, 5, 4), dt.date(2022, 5, 5), dt.date(2022, 5, 6)]


def day_bars(*days: dt.date) -> list[list[float]]:
    wanted = set(days)
    return [b for b in BARS if dt.datetime.fromtimestamp(b[0] / 1000, UTC).date() in wanted]


def test_failover_to_second_provider_when_first_is_down(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/api/v3/klines").respond_with_data("", status=503)
    serve_coinbase(httpserver, BARS)
    clients = [make(BinanceClient, httpserver, fake, max_attempts=2), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", DAYS, clients, now=LATER)
    pd.testing.assert_frame_equal(result.frame, expected_frame(day_bars(*DAYS), "coinbase"))
    assert result.failed_days == {}
    assert served_days(result) == {"coinbase": 3}
    assert {o.status for o in result.days.values()} == {"complete"}
    assert "binance: HTTP 503" in result.days[DAYS[0]].detail and "coinbase: 24 bars" in result.days[DAYS[0]].detail
    # The failed 3-day request is bisected ([4-6] -> [4], [5-6] -> [5], [6]): 5 failed calls of 2 attempts,
    # after which Binance's circuit is open and no more calls go to it.
    assert result.stats["by_provider"]["binance"]["failures"] == 5
    assert result.stats["by_provider"]["binance"]["requests"] == 10
    assert result.stats["by_provider"]["coinbase"]["requests"] == 1
    assert result.stats["requests"] == 11 and result.stats["retries"] == 5


def test_failover_mixes_providers_per_day_in_few_requests(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, day_bars(DAYS[0], DAYS[1]))  # Binance lacks the third day
    serve_coinbase(httpserver, BARS)
    clients = [make(BinanceClient, httpserver, fake), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", DAYS, clients, now=LATER)
    expected = pd.concat(
        [expected_frame(day_bars(DAYS[0], DAYS[1]), "binance"), expected_frame(day_bars(DAYS[2]), "coinbase")],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(result.frame, expected)
    assert served_days(result) == {"binance": 2, "coinbase": 1}
    assert result.days[DAYS[2]].detail == "binance: no bars; coinbase: 24 bars"
    assert result.days[DAYS[0]].detail == "binance: 24 bars"  # the next provider was not asked for it
    assert len(seen(httpserver, "/api/v3/klines")) == 1  # the whole range at once
    coinbase_requests = seen(httpserver, "/products/")
    assert len(coinbase_requests) == 1 and coinbase_requests[0].args["start"] == "2022-05-06T00:00:00Z"


def test_day_no_provider_serves_lands_in_failed_days(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, day_bars(DAYS[0]))
    serve_cryptocompare(httpserver, day_bars(DAYS[0], DAYS[1]), key=SECRET)
    httpserver.expect_request(re.compile(r"^/products/")).respond_with_data("<html>502 Bad Gateway</html>", status=502)
    clients = [
        make(BinanceClient, httpserver, fake),
        make(CoinbaseClient, httpserver, fake, max_attempts=2),
        make(CryptoCompareClient, httpserver, fake, api_key=SECRET),
    ]
    result = fetch_prices_with_failover("BTC", DAYS, clients, now=LATER)
    assert served_days(result) == {"binance": 1, "cryptocompare": 1}
    assert set(result.frame["provider"]) == {"binance", "cryptocompare"}
    assert list(result.failed_days) == [DAYS[2]]
    failed = result.days[DAYS[2]]
    assert (failed.status, failed.bars, failed.provider) == ("failed", 0, None)
    assert failed.detail.startswith("binance: no bars; coinbase: HTTP 502 (HTML error page) after 2 attempts")
    assert failed.detail.endswith("cryptocompare: no bars")
    assert SECRET not in failed.detail


def test_every_provider_answering_without_bars_is_no_data_not_a_failure(httpserver: HTTPServer, fake: FakeTime) -> None:
    """Before a listing (or after a delisting) every provider answers without error and none has a bar."""
    listing = DAYS[1]
    serve_binance(httpserver, day_bars(listing, DAYS[2]))
    serve_coinbase(httpserver, day_bars(listing, DAYS[2]))
    clients = [make(BinanceClient, httpserver, fake), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", DAYS, clients, now=LATER)
    assert {day: o.status for day, o in result.days.items()} == {
        DAYS[0]: "no_data",
        DAYS[1]: "complete",
        DAYS[2]: "complete",
    }
    assert result.failed_days == {}
    assert result.days[DAYS[0]].detail == "binance: no bars; coinbase: no bars"


def test_the_most_complete_answer_wins_the_whole_day(httpserver: HTTPServer, fake: FakeTime) -> None:
    """A partial day asks the next providers; the most complete answer is taken as a whole (never stitched),
    the earlier provider winning ties; the gap stays visible as ``partial``."""
    first = [b for b in day_bars(DAYS[0]) if not 10 <= dt.datetime.fromtimestamp(b[0] / 1000, UTC).hour < 13]
    second = [b for b in day_bars(DAYS[0]) if dt.datetime.fromtimestamp(b[0] / 1000, UTC).hour != 5]
    serve_binance(httpserver, first + day_bars(DAYS[1]))  # 21 of 24 bars on the first day
    serve_coinbase(httpserver, second)  # 23 of 24
    clients = [make(BinanceClient, httpserver, fake), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", DAYS[:2], clients, now=LATER)
    day = result.days[DAYS[0]]
    assert (day.status, day.bars, day.provider) == ("partial", 23, "coinbase")
    assert day.detail == "binance: 21 bars; coinbase: 23 bars"
    served = result.frame[result.frame["ts"].dt.date == DAYS[0]]
    assert set(served["provider"]) == {"coinbase"} and len(served) == 23
    assert result.days[DAYS[1]].status == "complete" and result.days[DAYS[1]].provider == "binance"


def test_a_young_day_with_every_closed_hour_is_complete_and_asks_no_one_else(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    serve_binance(httpserver, BARS)
    serve_coinbase(httpserver, BARS)
    now = dt.datetime.combine(DAYS[0], dt.time(13, 5), tzinfo=UTC)
    clients = [make(BinanceClient, httpserver, fake), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", [DAYS[0]], clients, now=now)
    day = result.days[DAYS[0]]
    assert (day.status, day.bars, day.provider) == ("complete", 13, "binance")
    assert seen(httpserver, "/products/") == []


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (
            lambda rows: [*rows, [*rows[7][:4], "99999.00000000", *rows[7][5:]]],
            "two different bars for 2022-05-04 07:00",
        ),
        (lambda rows: [*rows, list(rows[7])], None),  # an identical repeat is simply de-duplicated
        (lambda rows: [r if i != 3 else [*r[:4], "NaN", *r[5:]] for i, r in enumerate(rows)], "close nan at"),
        (lambda rows: [r if i != 3 else [*r[:3], "-5.00000000", *r[4:]] for i, r in enumerate(rows)], "low -5.0 at"),
        (lambda rows: [r if i != 3 else [r[0], r[1], r[3], r[2], *r[4:]] for i, r in enumerate(rows)], "below low"),
    ],
)
def test_a_contradictory_answer_is_rejected_for_its_day_and_the_next_provider_asked(
    httpserver: HTTPServer, fake: FakeTime, spoil, words
) -> None:
    serve_binance(httpserver, day_bars(DAYS[0]), mutate=spoil)
    serve_coinbase(httpserver, BARS)
    clients = [make(BinanceClient, httpserver, fake), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", [DAYS[0]], clients, now=LATER)
    day = result.days[DAYS[0]]
    if words is None:
        assert (day.status, day.bars, day.provider) == ("complete", 24, "binance")
        pd.testing.assert_frame_equal(result.frame, expected_frame(day_bars(DAYS[0]), "binance"))
        return
    assert (day.status, day.provider) == ("complete", "coinbase")
    assert day.detail.startswith("binance: answer rejected: ") and words in day.detail
    assert day.detail.endswith("coinbase: 24 bars")


def test_a_contradiction_no_one_else_can_replace_fails_that_day_alone(httpserver: HTTPServer, fake: FakeTime) -> None:
    def negative_close_on_the_second_day(rows):
        return [[*r[:4], "-1.00000000", *r[5:]] if r[0] == ms(T0) + 30 * HOUR_MS else r for r in rows]

    serve_binance(httpserver, day_bars(*DAYS), mutate=negative_close_on_the_second_day)
    result = fetch_prices_with_failover("BTC", DAYS, [make(BinanceClient, httpserver, fake)], now=LATER)
    assert {day: o.status for day, o in result.days.items()} == {
        DAYS[0]: "complete",
        DAYS[1]: "failed",
        DAYS[2]: "complete",
    }
    assert result.days[DAYS[1]].detail == "binance: answer rejected: close -1.0 at 2022-05-05 06:00 UTC"
    assert set(result.frame["ts"].dt.date) == {DAYS[0], DAYS[2]}


def test_unknown_symbol_moves_every_day_on_without_more_requests(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_binance(httpserver, BARS)
    serve_coinbase(httpserver, BARS)
    serve_kraken(httpserver, BARS)
    days = [DAYS[0], dt.date(2022, 5, 10), dt.date(2022, 5, 20)]  # three separate runs
    clients = [make(c, httpserver, fake) for c in (BinanceClient, CoinbaseClient, KrakenClient)]
    result = fetch_prices_with_failover("NOPE", days, clients, now=LATER)
    assert result.frame.empty and list(result.frame.columns) == list(PRICE_COLUMNS)
    # every provider answered "not listed": no data, not a failure (a re-run would not help)
    assert result.failed_days == {} and result.with_status("no_data") == days
    for outcome in result.days.values():
        assert "binance: not listed (unknown symbol NOPEUSDT: Invalid symbol." in outcome.detail
        assert "coinbase: not listed (unknown product NOPE-USD" in outcome.detail
        assert "kraken: not listed (unknown asset pair: EQuery:Unknown asset pair)" in outcome.detail
    assert len(httpserver.log) == 3  # one answer per provider was enough


def test_clients_are_built_through_the_registry() -> None:
    clients, skipped = registry.build_clients(
        "prices",
        ["cryptocompare", "kraken"],
        urls={"cryptocompare": "http://127.0.0.1:9/cc/", "kraken": "http://x"},
        options={},
        keys={"CRYPTOCOMPARE_API_KEY": "k"},
        rate_limited=True,
    )
    client, kraken = clients
    assert isinstance(client, CryptoCompareClient) and client.name == "cryptocompare" and client.api_key == "k"
    assert client.http.base_url == "http://127.0.0.1:9/cc" and client.http.provider == "cryptocompare"
    assert isinstance(kraken, KrakenClient) and skipped == []
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        registry.build_clients("prices", ["nope"], urls={}, options={}, keys={}, rate_limited=True)


def test_one_bad_day_is_bisected_out_of_a_multi_day_request(httpserver: HTTPServer, fake: FakeTime) -> None:
    bad_start = int(dt.datetime(2022, 5, 5, tzinfo=UTC).timestamp() * 1000)
    bad_end = bad_start + 24 * 3_600_000

    def handle(request: Request) -> Response:
        start, end = int(request.args["startTime"]), int(request.args["endTime"])
        if start < bad_end and end >= bad_start:
            return Response("", status=503)
        return json_response([binance_row(b) for b in BARS if start <= b[0] <= end])

    httpserver.expect_request("/api/v3/klines").respond_with_handler(handle)
    serve_coinbase(httpserver, BARS)
    clients = [make(BinanceClient, httpserver, fake, max_attempts=1), make(CoinbaseClient, httpserver, fake)]
    result = fetch_prices_with_failover("BTC", DAYS, clients, now=LATER)
    assert served_days(result) == {"binance": 2, "coinbase": 1}
    assert result.failed_days == {}
    served = result.frame.groupby(result.frame["ts"].dt.date)["provider"].first().to_dict()
    assert served == {DAYS[0]: "binance", DAYS[1]: "coinbase", DAYS[2]: "binance"}
