"""HttpClient against a real local HTTP server (pytest-httpserver) serving recorded provider bodies.

Faults (429/418/503, timeouts, truncated JSON, HTML pages) are injected by the server. Only time is
faked: ``sleep`` and the monotonic clock are injected so backoff, rate limits and the circuit breaker
are checked exactly without waiting.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import random
import socket
import time
import traceback

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import (
    UNRESOLVED_HOST,
    HttpClient,
    HttpStatusError,
    circuit_breaker,
    circuit_state,
    merge_stats,
    parse_retry_after,
)
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import CC_ERRORS, provider_fixture

KLINES = {
    "body": provider_fixture("binance", "klines_BTCUSDT_1m_testnet-recorded.json"),
    "response_headers_subset": provider_fixture("binance", "klines_BTCUSDT_1m_testnet-recorded_headers.json"),
}
KLINES_BODY = json.dumps(KLINES["body"])
KLINES_HEADERS = {k: v for k, v in KLINES["response_headers_subset"].items() if k != "Content-Type"}
SECRET = "s3cr3t-KEY-0123456789"
WALL = 1_700_000_000.0  # a fixed wall-clock epoch for Retry-After dates and weight minutes


def client(server: HTTPServer, fake: FakeTime, provider: str = "binance", **kwargs) -> HttpClient:
    options = {
        "rate_per_second": 1000.0,
        "timeout": (2.0, 5.0),
        "sleep": fake.sleep,
        "clock": fake.clock,
        "wall_clock": lambda: WALL,
        "rng": random.Random(7),
    }
    options.update(kwargs)
    return HttpClient(provider, server.url_for("/"), **options)


def serve_klines(server: HTTPServer, **headers: str) -> None:
    server.expect_ordered_request("/api/v3/klines").respond_with_data(
        KLINES_BODY, content_type="application/json;charset=UTF-8", headers={**KLINES_HEADERS, **headers}
    )


def requests_seen(server: HTTPServer) -> int:
    return len(server.log)


# --------------------------------------------------------------------------------------------- success, retries


def test_real_body_returned_and_counted(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_klines(httpserver)
    http = client(httpserver, fake)
    body = http.get_json("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1})
    assert body == KLINES["body"]
    assert httpserver.log[0][0].args["symbol"] == "BTCUSDT"
    assert http.stats() == {
        "requests": 1,
        "retries": 0,
        "retry_wait_seconds": 0.0,
        "rate_limit_wait_seconds": 0.0,
        "failures": 0,
        "circuit_rejections": 0,
    }


def test_429_honours_retry_after_seconds(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_ordered_request("/api/v3/klines").respond_with_data(
        '{"code":-1003,"msg":"Too many requests"}', status=429, headers={"Retry-After": "7"}
    )
    serve_klines(httpserver)
    http = client(httpserver, fake)
    assert http.get_json("/api/v3/klines") == KLINES["body"]
    assert fake.sleeps == [7.0]
    stats = http.stats()
    assert (stats["requests"], stats["retries"], stats["retry_wait_seconds"], stats["failures"]) == (2, 1, 7.0, 0)


def test_418_honours_retry_after_http_date(httpserver: HTTPServer, fake: FakeTime) -> None:
    date = email.utils.formatdate(WALL + 12, usegmt=True)
    httpserver.expect_ordered_request("/api/v3/klines").respond_with_data("", status=418, headers={"Retry-After": date})
    serve_klines(httpserver)
    assert client(httpserver, fake).get_json("/api/v3/klines") == KLINES["body"]
    assert fake.sleeps == [12.0]


def test_retry_after_is_capped(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_ordered_request("/api/v3/klines").respond_with_data(
        "", status=418, headers={"Retry-After": "86400"}
    )
    serve_klines(httpserver)
    assert client(httpserver, fake, max_retry_after=60.0).get_json("/api/v3/klines") == KLINES["body"]
    assert fake.sleeps == [60.0]


def test_503_recovers_with_full_jitter_backoff(httpserver: HTTPServer, fake: FakeTime, caplog) -> None:
    for _ in range(3):
        httpserver.expect_ordered_request("/api/v3/klines").respond_with_data("Service Unavailable", status=503)
    serve_klines(httpserver)
    with caplog.at_level(logging.WARNING, logger="crypto_assets.http"):
        assert client(httpserver, fake, backoff_base=0.5).get_json("/api/v3/klines") == KLINES["body"]
    assert len(fake.sleeps) == 3
    for attempt, wait in enumerate(fake.sleeps, start=1):
        assert 0.0 <= wait <= 0.5 * 2 ** (attempt - 1)
    assert len(set(fake.sleeps)) == 3  # jittered, not a fixed schedule
    lines = [r.getMessage() for r in caplog.records if r.name == "crypto_assets.http"]
    assert len(lines) == 3
    assert "attempt 1/5" in lines[0] and "HTTP 503" in lines[0] and "retrying in" in lines[0]


def test_backoff_never_exceeds_backoff_max(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/x").respond_with_data("", status=500)
    http = client(httpserver, fake, "p500", max_attempts=8, backoff_base=1.0, backoff_max=3.0)
    with pytest.raises(ProviderError):
        http.get_json("/x")
    assert len(fake.sleeps) == 7 and max(fake.sleeps) <= 3.0


def test_503_persisting_fails_clearly(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/api/v3/klines").respond_with_data("<html><body>503</body></html>", status=503)
    http = client(httpserver, fake)
    with pytest.raises(ProviderError) as info:
        http.get_json("/api/v3/klines", {"symbol": "BTCUSDT"})
    err = info.value
    assert err.provider == "binance" and err.retryable
    assert "HTTP 503 (HTML error page) after 5 attempts" in str(err)
    assert "/api/v3/klines?symbol=BTCUSDT" in err.url
    assert requests_seen(httpserver) == 5 and len(fake.sleeps) == 4
    assert http.stats()["failures"] == 1 and http.stats()["retries"] == 4


def test_truncated_json_recovers(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_ordered_request("/api/v3/klines").respond_with_data(
        KLINES_BODY[:40], content_type="application/json"
    )
    serve_klines(httpserver)
    assert client(httpserver, fake).get_json("/api/v3/klines") == KLINES["body"]
    assert requests_seen(httpserver) == 2


def test_truncated_json_persisting_names_body(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/api/v3/klines").respond_with_data(KLINES_BODY[:40], content_type="application/json")
    with pytest.raises(ProviderError) as info:
        client(httpserver, fake, max_attempts=3).get_json("/api/v3/klines")
    assert f"truncated JSON body (first 80 chars: {KLINES_BODY[:40]}) after 3 attempts" in str(info.value)


def test_malformed_json_is_named_as_such(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/x").respond_with_data('{"a": 1,, "b": 2}', content_type="application/json")
    with pytest.raises(ProviderError, match=r"malformed JSON body .* after 2 attempts"):
        client(httpserver, fake, max_attempts=2).get_json("/x")


def test_html_page_instead_of_json_recovers_then_fails_clearly(httpserver: HTTPServer, fake: FakeTime) -> None:
    page = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking</body></html>"
    httpserver.expect_ordered_request("/api/v3/klines").respond_with_data(page, content_type="text/html")
    serve_klines(httpserver)
    assert client(httpserver, fake).get_json("/api/v3/klines") == KLINES["body"]

    httpserver.clear()
    httpserver.expect_request("/api/v3/klines").respond_with_data(page, content_type="text/html")
    with pytest.raises(ProviderError, match=r"HTML page where JSON was expected .*Just a moment"):
        client(httpserver, fake, max_attempts=2).get_json("/api/v3/klines")


def _threaded_server() -> HTTPServer:
    server = HTTPServer(threaded=True)
    server.start()
    return server


def test_timeout_recovers_and_persisting_timeout_fails() -> None:
    server = _threaded_server()
    fake = FakeTime()
    try:
        calls = []

        def slow_once(request: Request) -> Response:
            calls.append(time.monotonic())
            if len(calls) == 1:
                time.sleep(0.6)
            return Response(KLINES_BODY, content_type="application/json")

        server.expect_request("/api/v3/klines").respond_with_handler(slow_once)
        http = client(server, fake, timeout=(1.0, 0.2))
        assert http.get_json("/api/v3/klines") == KLINES["body"]
        assert len(calls) == 2 and http.stats()["retries"] == 1

        server.clear()

        def always_slow(request: Request) -> Response:
            time.sleep(0.5)
            return Response(KLINES_BODY, content_type="application/json")

        server.expect_request("/api/v3/klines").respond_with_handler(always_slow)
        with pytest.raises(ProviderError, match=r"read timeout \(limits 1/0.2 s\) after 2 attempts"):
            client(server, fake, timeout=(1.0, 0.2), max_attempts=2).get_json("/api/v3/klines")
    finally:
        server.clear()
        server.stop()


def test_connection_refused_is_retried_then_reported(fake: FakeTime) -> None:
    with HTTPServer() as probe:  # find a free port, then close it
        dead_url = probe.url_for("/")
        port = probe.port
    http = HttpClient("deadhost", dead_url, rate_per_second=1000, sleep=fake.sleep, clock=fake.clock, max_attempts=3)
    with pytest.raises(ProviderError) as info:
        http.get_json("/api/v3/klines")
    assert info.value.cause == f"connection error: localhost:{port} refused the connection after 3 attempts"
    assert len(fake.sleeps) == 2


def test_a_host_name_that_does_not_resolve_is_named(fake: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, requests nests the resolver's error three deep; the message names the host instead.

    Mocked: the DNS lookup (``socket.getaddrinfo``), since a resolver answering "no such host" needs a network
    this machine does not have. urllib3 and requests wrap its error exactly as they would a real one.
    """

    def no_dns(host: str, *args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    http = HttpClient(
        "binance", "https://api.binance.com", rate_per_second=1000, sleep=fake.sleep, clock=fake.clock, max_attempts=2
    )
    with pytest.raises(ProviderError) as info:
        http.get_json("/api/v3/klines", {"symbol": "BTCUSDT"})
    assert info.value.cause == (
        f"connection error: {UNRESOLVED_HOST} api.binance.com (DNS lookup failed) after 2 attempts"
    )
    assert str(info.value).startswith("binance: connection error: cannot resolve host api.binance.com")


def test_a_proxy_that_refuses_is_blamed_not_the_provider(fake: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY names a local port nobody listens on: requests goes there (never to the internet)."""
    with HTTPServer() as probe:  # find a free port, then close it
        port = probe.port
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    http = HttpClient(
        "binance", "https://api.binance.com", rate_per_second=1000, sleep=fake.sleep, clock=fake.clock, max_attempts=1
    )
    with pytest.raises(ProviderError) as info:
        http.get_json("/api/v3/klines")
    assert info.value.cause == (
        "connection error: the proxy (HTTPS_PROXY/HTTP_PROXY) failed: it refused the connection after 1 attempt"
    )


# --------------------------------------------------------------------------------------------- permanent errors


def test_4xx_is_not_retried(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/api/v3/klines").respond_with_data(
        '{"code":-1121,"msg":"Invalid symbol."}', status=400, content_type="application/json;charset=UTF-8"
    )
    http = client(httpserver, fake)
    with pytest.raises(HttpStatusError) as info:
        http.get_json("/api/v3/klines", {"symbol": "NOPEUSDT"})
    assert info.value.status == 400 and not info.value.retryable
    assert info.value.json_body() == {"code": -1121, "msg": "Invalid symbol."}
    assert 'HTTP 400: {"code":-1121,"msg":"Invalid symbol."}' in str(info.value)
    assert requests_seen(httpserver) == 1 and fake.sleeps == []


@pytest.mark.parametrize("example", CC_ERRORS, ids=lambda e: e["Message"][:20])
def test_validate_permanent_error_stops_at_once(httpserver: HTTPServer, fake: FakeTime, example: dict) -> None:
    httpserver.expect_request("/data/v2/histohour").respond_with_json(example)

    def validate(body):
        if body.get("Response") == "Error":
            raise ProviderError("cryptocompare", "", f"error response: {body['Message']}")

    http = client(httpserver, fake, "cryptocompare")
    with pytest.raises(ProviderError) as info:
        http.get_json("/data/v2/histohour", {"fsym": "BTC"}, validate=validate)
    assert f"error response: {example['Message']}" in str(info.value)
    assert "/data/v2/histohour?fsym=BTC" in info.value.url  # the URL is filled in by HttpClient
    assert requests_seen(httpserver) == 1


def test_validate_keeps_error_class_and_retryable_flag(httpserver: HTTPServer, fake: FakeTime) -> None:
    body = {"Response": "Error", "Message": "cccagg_or_exchange market does not exist for this coin pair (NOPE-USD)"}
    httpserver.expect_request("/h").respond_with_json(body)

    def unknown(data):
        raise UnknownSymbolError("cryptocompare", "", data["Message"])

    with pytest.raises(UnknownSymbolError, match="market does not exist"):
        client(httpserver, fake, "cryptocompare").get_json("/h", validate=unknown)
    assert requests_seen(httpserver) == 1

    def transient(data):
        raise ProviderError("cryptocompare", "", "rate limit", retryable=True)

    with pytest.raises(ProviderError, match="rate limit after 3 attempts"):
        client(httpserver, fake, "cryptocompare", max_attempts=3).get_json("/h", validate=transient)
    assert requests_seen(httpserver) == 4


# --------------------------------------------------------------------------------------------- secrets


def _all_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err)) + repr(err) + str(err.__dict__)


def test_secrets_never_in_errors_or_logs(httpserver: HTTPServer, fake: FakeTime, caplog) -> None:
    # The server echoes the key back in its error bodies, as some APIs do.
    httpserver.expect_request("/down").respond_with_data(f"overloaded for key {SECRET}", status=503)
    httpserver.expect_request("/bad").respond_with_json({"error": f"bad key {SECRET}"}, status=401)
    http = client(httpserver, fake, "cryptocompare", secret_params=("api_key",), max_attempts=2)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ProviderError) as down:
            http.get_json("/down", {"fsym": "BTC", "api_key": SECRET}, headers={"authorization": f"Apikey {SECRET}"})
        with pytest.raises(HttpStatusError) as bad:
            http.get_json("/bad", {"api_key": SECRET})
    assert httpserver.log[0][0].args["api_key"] == SECRET  # it was really sent
    for err in (down.value, bad.value):
        assert SECRET not in _all_text(err)
        assert "api_key=***" in err.url
    assert SECRET not in bad.value.body
    # Our own log lines (urllib3's DEBUG lines echo query strings: clients send keys in headers instead).
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("crypto_assets")]
    assert ours and all(SECRET not in line for line in ours)


def test_secret_redacted_from_connection_errors(fake: FakeTime) -> None:
    with HTTPServer() as probe:
        dead_url = probe.url_for("/")
    http = HttpClient("deadhost", dead_url, rate_per_second=1000, sleep=fake.sleep, clock=fake.clock, max_attempts=1)
    with pytest.raises(ProviderError) as info:
        http.get_json("/x", {"apikey": SECRET})
    assert SECRET not in _all_text(info.value)


# --------------------------------------------------------------------------------------------- circuit breaker


def test_circuit_opens_after_5_failed_calls_fails_fast_and_probes(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/api/v3/klines").respond_with_data("down", status=503)
    http = client(httpserver, fake, max_attempts=2)
    for _ in range(5):
        with pytest.raises(ProviderError, match="HTTP 503"):
            http.get_json("/api/v3/klines")
    assert circuit_state("binance") == "open"
    assert requests_seen(httpserver) == 10

    # Another client of the same provider shares the breaker and fails fast, without a request.
    other = client(httpserver, fake)
    with pytest.raises(ProviderError, match=r"circuit open after 5 consecutive failed calls; retry after 60 s") as info:
        other.get_json("/api/v3/klines")
    assert info.value.retryable
    assert info.value.cause.endswith("(the last: HTTP 503 (down))"), "an open circuit still says why it opened"
    assert requests_seen(httpserver) == 10 and other.stats()["circuit_rejections"] == 1

    fake.now += 59.5
    with pytest.raises(ProviderError, match="retry after 1 s"):
        http.get_json("/api/v3/klines")
    assert requests_seen(httpserver) == 10

    # After 60 s one probe goes through (a single attempt); it fails, so the breaker re-opens.
    fake.now += 0.5
    with pytest.raises(ProviderError, match=r"HTTP 503 \(down\) after 1 attempt \(half-open probe\)"):
        http.get_json("/api/v3/klines")
    assert requests_seen(httpserver) == 11 and circuit_state("binance") == "open"
    with pytest.raises(ProviderError, match="circuit open"):
        http.get_json("/api/v3/klines")

    # Next probe succeeds: closed again, normal traffic resumes.
    fake.now += 60
    httpserver.clear()
    httpserver.expect_request("/api/v3/klines").respond_with_data(KLINES_BODY, content_type="application/json")
    assert http.get_json("/api/v3/klines") == KLINES["body"]
    assert circuit_state("binance") == "closed"
    assert http.get_json("/api/v3/klines") == KLINES["body"]


def test_breaker_is_per_provider_and_ignores_definite_answers(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/down").respond_with_data("", status=502)
    httpserver.expect_request("/missing").respond_with_json({"message": "NotFound"}, status=404)
    httpserver.expect_request("/ok").respond_with_data(KLINES_BODY, content_type="application/json")
    down = client(httpserver, fake, "kraken", max_attempts=1)
    for _ in range(5):
        with pytest.raises(ProviderError):
            down.get_json("/down")
    assert circuit_state("kraken") == "open"
    assert circuit_state("coinbase") == "closed"
    assert client(httpserver, fake, "coinbase").get_json("/ok") == KLINES["body"]

    # Permanent answers prove the provider is up: they never open the breaker.
    coinbase = client(httpserver, fake, "coinbase")
    for _ in range(7):
        with pytest.raises(HttpStatusError):
            coinbase.get_json("/missing")
    assert circuit_state("coinbase") == "closed"
    assert circuit_breaker("coinbase").consecutive_failures == 0


def test_success_resets_consecutive_failures(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/down").respond_with_data("", status=500)
    httpserver.expect_request("/ok").respond_with_json([1])
    http = client(httpserver, fake, max_attempts=1)
    for _ in range(4):
        with pytest.raises(ProviderError):
            http.get_json("/down")
    http.get_json("/ok")
    for _ in range(4):
        with pytest.raises(ProviderError):
            http.get_json("/down")
    assert circuit_state("binance") == "closed"


# --------------------------------------------------------------------------------------------- rate limiting


def test_rate_limiter_spaces_requests_across_clients_of_a_provider(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/ok").respond_with_json([])
    first = client(httpserver, fake, "coinbase", rate_per_second=4.0)
    second = client(httpserver, fake, "coinbase", rate_per_second=4.0)
    stamps = []
    for http in (first, second, first, second, first):
        http.get_json("/ok")
        stamps.append(fake.now)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps == pytest.approx([0.25] * 4)
    assert fake.sleeps == pytest.approx([0.25] * 4)
    assert first.stats()["rate_limit_wait_seconds"] + second.stats()["rate_limit_wait_seconds"] == pytest.approx(1.0)

    # Another provider has its own budget: no wait.
    other = client(httpserver, fake, "kraken", rate_per_second=4.0)
    other.get_json("/ok")
    assert len(fake.sleeps) == 4

    # Time passing refills the bucket: no wait after a pause.
    fake.now += 10
    first.get_json("/ok")
    assert len(fake.sleeps) == 4


def test_burst_sends_at_once_then_spaces_at_the_rate(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/ok").respond_with_json([])
    http = client(httpserver, fake, "coinbase", rate_per_second=4.0, burst=3)
    for _ in range(5):
        http.get_json("/ok")
    assert fake.sleeps == pytest.approx([0.25, 0.25])

    # A client of the same provider asking for a smaller burst makes the shared bucket stricter.
    fake.now += 10
    strict = client(httpserver, fake, "coinbase", rate_per_second=4.0, burst=1)
    strict.get_json("/ok")
    http.get_json("/ok")
    assert fake.sleeps == pytest.approx([0.25, 0.25, 0.25])


def test_a_client_without_rate_limit_never_waits_but_honours_pauses(httpserver: HTTPServer, fake: FakeTime) -> None:
    """``rate_per_second=None`` (CRYPTO_ASSETS_RATE_LIMITS=off): no spacing, and no share in the provider's bucket."""
    httpserver.expect_request("/ok").respond_with_json([])
    limited = client(httpserver, fake, "binance", rate_per_second=1.0)
    free = client(httpserver, fake, "binance", rate_per_second=None)
    for _ in range(20):
        free.get_json("/ok")
    assert fake.sleeps == [] and free.stats()["rate_limit_wait_seconds"] == 0
    limited.get_json("/ok")
    limited.get_json("/ok")
    assert fake.sleeps == pytest.approx([1.0])

    free.limiter.pause_until(fake.now + 7)
    free.get_json("/ok")
    assert fake.sleeps == pytest.approx([1.0, 7.0])


def test_binance_weight_header_pauses_until_next_minute(httpserver: HTTPServer, fake: FakeTime) -> None:
    wall = 1_700_000_025.0
    seconds_left = 60 - wall % 60
    assert seconds_left == 15  # 45 s into a wall-clock minute
    serve_klines(httpserver)  # the real sample header: weight 3, far below the budget
    serve_klines(httpserver, **{"x-mbx-used-weight-1m": "1100"})
    serve_klines(httpserver)
    serve_klines(httpserver)
    http = client(httpserver, fake, wall_clock=lambda: wall, weight_header="x-mbx-used-weight-1m", weight_budget=1000)
    http.get_json("/api/v3/klines")
    fake.now += 1
    http.get_json("/api/v3/klines")
    assert fake.sleeps == []
    fake.now += 1
    http.get_json("/api/v3/klines")  # waits for the next minute
    # paused at the answer until the next minute (+0.5 s margin); 1 s of that has already passed
    assert fake.sleeps == [pytest.approx(seconds_left + 0.5 - 1)]
    fake.now += 1
    http.get_json("/api/v3/klines")
    assert len(fake.sleeps) == 1


# --------------------------------------------------------------------------------------------- helpers


def test_parse_retry_after() -> None:
    assert parse_retry_after("5", now_epoch=WALL) == 5.0
    assert parse_retry_after(email.utils.formatdate(WALL + 30, usegmt=True), now_epoch=WALL) == 30.0
    assert parse_retry_after(email.utils.formatdate(WALL - 30, usegmt=True), now_epoch=WALL) == 0.0
    assert parse_retry_after("soon", now_epoch=WALL) is None
    assert parse_retry_after(None, now_epoch=WALL) is None


def test_merge_stats_sums_counters() -> None:
    merged = merge_stats([{"requests": 2, "retry_wait_seconds": 1.5}, {"requests": 3, "retries": 1, "x": "y"}])
    assert merged == {"requests": 5, "retry_wait_seconds": 1.5, "retries": 1}


def test_absolute_urls_and_redaction(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/feed").respond_with_data("<rss></rss>", content_type="application/rss+xml")
    http = HttpClient("rss", "", rate_per_second=1000, sleep=fake.sleep, clock=fake.clock)
    assert http.get_text(httpserver.url_for("/feed")) == "<rss></rss>"
    assert http.redact("https://h/x?a=1&api_key=abc&token=t") == "https://h/x?a=1&api_key=***&token=***"


def test_json_mislabelled_as_html_still_parses(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/api/v3/klines").respond_with_data(KLINES_BODY, content_type="text/html; charset=utf-8")
    assert client(httpserver, fake).get_json("/api/v3/klines") == KLINES["body"]


def test_get_text_defaults_to_utf8(httpserver: HTTPServer, fake: FakeTime) -> None:
    title = provider_fixture("cryptocompare", "news-item_coinspeaker_recorded.json")["title"]  # a curly apostrophe
    httpserver.expect_request("/feed").respond_with_data(title.encode("utf-8"), content_type="text/xml")
    assert client(httpserver, fake, "rss").get_text("/feed") == title


def test_unexpected_exception_in_probe_does_not_wedge_the_breaker(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request("/down").respond_with_data("", status=503)
    httpserver.expect_request("/ok").respond_with_json([1])
    http = client(httpserver, fake, max_attempts=1)
    for _ in range(5):
        with pytest.raises(ProviderError):
            http.get_json("/down")
    fake.now += 60

    def boom(body):
        raise RuntimeError("bug in a validator")

    with pytest.raises(RuntimeError):
        http.get_json("/ok", validate=boom)
    assert http.get_json("/ok") == [1]  # the next call may probe, and closes the breaker
    assert circuit_state("binance") == "closed"
