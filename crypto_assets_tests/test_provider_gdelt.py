"""GDELT DOC 2.0 client and replay format: window splitting, coverage, history horizon, throttling, back-off.

Articles are the project's real bundled news items that have a URL (crypto_assets.replay.data), served in GDELT's
artlist format by the replay server or by the small handler below; the plain-text answers and fixtures are in
fixtures/providers/gdelt (its README says which are documented and which are built from bundled items). Only time
is injected (FakeTime: a clock that only moves when the client sleeps).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.config import load_settings
from crypto_assets.errors import ConfigError
from crypto_assets.providers import registry
from crypto_assets.providers.gdelt import (
    DOC_PATH,
    HISTORY_ENV,
    MAX_RECORDS,
    OR_MESSAGE,
    PROVIDER,
    QUERY,
    THROTTLE_MESSAGE,
    GdeltClient,
    article,
    make_http,
    parse_gdelt_time,
    parse_history_days,
    query_error,
)
from crypto_assets.providers.news import FAILED, OK, RAW_NEWS_COLUMNS, SKIPPED
from crypto_assets.replay.data import bundled_news_index
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import provider_fixture

UTC = dt.UTC
T0 = dt.datetime(2022, 6, 1, tzinfo=UTC)
LATER = dt.datetime(2022, 8, 2, tzinfo=UTC)
DAY = 86400


def ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def with_url(start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Bundled news items with a URL published in [start, end), oldest first."""
    return [item for item in bundled_news_index().between(ts(start), ts(end)) if item["url"]]


def make(
    server: HTTPServer,
    fake: FakeTime,
    *,
    rate_limited: bool = False,
    history_days: int = 36500,
    cls: type[GdeltClient] = GdeltClient,
) -> GdeltClient:
    url = server.url_for("/")
    http = make_http(url, rate_limited, sleep=fake.sleep, clock=fake.clock, rng=random.Random(0))
    return cls(url, rate_limited=rate_limited, options={"history_days": history_days}, http=http)


Answer = Callable[[Request], Response | None]


def serve_bundled(server: HTTPServer, answer: Answer | None = None, on_request: Callable | None = None) -> None:
    """GDELT's artlist over the bundled items with a URL: [startdatetime, enddatetime], dateasc, maxrecords."""
    news = bundled_news_index()

    def handle(request: Request) -> Response:
        if on_request is not None:
            on_request(request)
        if answer is not None and (special := answer(request)) is not None:
            return special
        assert request.args["mode"] == "artlist" and request.args["format"] == "json"
        assert request.args["sort"] == "dateasc" and request.args["query"] == QUERY
        start, end = parse_gdelt_time(request.args["startdatetime"]), parse_gdelt_time(request.args["enddatetime"])
        items = [item for item in news.between(start, end + 1) if item["url"]][: int(request.args["maxrecords"])]
        body = {"articles": [article(item) for item in items]} if items else {}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request(DOC_PATH).respond_with_handler(handle)


def windows_asked(server: HTTPServer) -> list[tuple[int, int]]:
    return [
        (parse_gdelt_time(r.args["startdatetime"]), parse_gdelt_time(r.args["enddatetime"]) + 1) for r, _ in server.log
    ]


def expected_requests(start: int, end: int, cap: int, times: list[int]) -> int:
    """Reference count: one request per window, a full one (``cap`` articles) halved down to 15 minutes."""
    n = sum(1 for t in times if start <= t < end)
    if min(n, cap) < cap or end - start <= 900:
        return 1
    middle = start + (end - start) // 2
    middle = middle - middle % 900 if start < middle - middle % 900 else middle
    return 1 + expected_requests(start, middle, cap, times) + expected_requests(middle, end, cap, times)


# ------------------------------------------------------------------------------------ splitting full answers


def test_gdelt_splits_full_windows_and_gets_every_bundled_article_from_the_replay() -> None:
    start, end = T0, T0 + dt.timedelta(days=10)
    expected = with_url(start, end)
    with ReplayServer() as server:
        client = GdeltClient(server.base_url("gdelt"), rate_limited=False, options={"history_days": 36500})
        answer = client.fetch(start, end, now=LATER)
        requests_made = server.stats()["gdelt"]
    times = [item["published_on"] for item in expected]
    assert len(expected) == 538 > MAX_RECORDS
    assert requests_made == expected_requests(ts(start), ts(end), MAX_RECORDS, times) == 5
    assert list(answer.articles.columns) == list(RAW_NEWS_COLUMNS)
    assert sorted(answer.articles["url"]) == sorted(item["url"] for item in expected)
    assert set(answer.articles["provider"]) == {"gdelt"} and set(answer.articles["body"]) == {""}
    assert [(w.start, w.end, w.status, w.articles, w.detail) for w in answer.coverage] == [(start, end, OK, 538, "")]


def test_gdelt_asks_exact_halves_of_each_full_window_on_15_minute_boundaries(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    serve_bundled(httpserver)
    start, end = T0, T0 + dt.timedelta(days=10)
    make(httpserver, fake).fetch(start, end, now=LATER)
    asked = windows_asked(httpserver)
    assert asked[0] == (ts(start), ts(end))
    full = [(lo, hi) for lo, hi in asked if len(with_url(*map(_dt, (lo, hi)))) >= MAX_RECORDS]
    for lo, hi in full:  # every full window's two halves were asked, nothing else was
        (middle,) = [m for (a, m) in asked if a == lo and lo < m < hi and (m, hi) in asked]
        assert middle % 900 == 0 and abs((middle - lo) - (hi - middle)) < 900
    assert len(full) == 2 and len(asked) == 1 + 2 * len(full)


def _dt(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, UTC)


def test_gdelt_window_still_full_at_15_minutes_is_ok_with_a_detail(httpserver: HTTPServer, fake: FakeTime) -> None:
    class SmallCap(GdeltClient):
        max_records = 3  # the bundled data holds up to 5 items a quarter hour: this reaches the 15-minute floor

    serve_bundled(httpserver)
    start, end = dt.datetime(2022, 5, 10, tzinfo=UTC), dt.datetime(2022, 5, 11, tzinfo=UTC)
    answer = make(httpserver, fake, cls=SmallCap).fetch(start, end, now=LATER)
    times = [item["published_on"] for item in with_url(start, end)]
    assert len(httpserver.log) == expected_requests(ts(start), ts(end), 3, times)
    capped = [w for w in answer.coverage if w.detail]
    assert capped and all(w.status == OK and w.end - w.start == dt.timedelta(minutes=15) for w in capped)
    assert all("GDELT's per-answer cap, some may be missing" in w.detail for w in capped)
    assert all(w.status == OK for w in answer.coverage)
    assert answer.coverage[0].start == start and answer.coverage[-1].end == end
    assert sum(w.articles for w in answer.coverage) == len(answer.articles)


# ------------------------------------------------------------------------------------ coverage and history


def test_gdelt_skips_what_is_older_than_history_days_and_never_asks_it(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    now = dt.datetime(2022, 8, 2, 12, tzinfo=UTC)
    horizon = now - dt.timedelta(days=60)
    start, end = dt.datetime(2022, 5, 30, tzinfo=UTC), dt.datetime(2022, 6, 5, tzinfo=UTC)
    answer = make(httpserver, fake, history_days=60).fetch(start, end, now=now)
    skipped, *answered = answer.coverage
    assert (skipped.start, skipped.end, skipped.status, skipped.articles) == (start, horizon, SKIPPED, 0)
    assert HISTORY_ENV in skipped.detail and "60 days" in skipped.detail
    assert all(w.status == OK for w in answered) and answered[-1].end == end
    assert min(lo for lo, _ in windows_asked(httpserver)) == ts(horizon)
    assert sorted(answer.articles["url"]) == sorted(item["url"] for item in with_url(horizon, end))

    # A window wholly beyond the horizon: recorded skipped, no request at all.
    before = len(httpserver.log)
    old = make(httpserver, fake, history_days=60).fetch(start, start + dt.timedelta(days=1), now=now)
    assert [w.status for w in old.coverage] == [SKIPPED] and old.articles.empty
    assert len(httpserver.log) == before


def test_gdelt_replay_and_a_client_with_the_same_horizon_agree_on_what_is_unknown() -> None:
    clock = dt.datetime(2022, 8, 20, tzinfo=UTC)  # the replay answers {} before 2022-05-20 (92 days)
    start, end = dt.datetime(2022, 5, 10, tzinfo=UTC), dt.datetime(2022, 5, 25, tzinfo=UTC)
    horizon = clock - dt.timedelta(days=92)
    with ReplayServer(clock=clock) as server:
        url = server.base_url("gdelt")
        honest = GdeltClient(url, rate_limited=False, options={"history_days": 92}).fetch(start, end, now=clock)
        # Told GDELT answers far back, a client reads the replay's {} as "no articles": why the horizon matters.
        fooled = GdeltClient(url, rate_limited=False, options={"history_days": 36500}).fetch(start, horizon, now=clock)
    assert [(w.start, w.end, w.status) for w in honest.coverage] == [(start, horizon, SKIPPED), (horizon, end, OK)]
    assert sorted(honest.articles["url"]) == sorted(item["url"] for item in with_url(horizon, end))
    assert with_url(start, horizon)  # there was news there...
    assert fooled.articles.empty and [(w.status, w.articles) for w in fooled.coverage] == [(OK, 0)]  # ...unseen


def test_gdelt_every_answer_429_is_a_failed_window_never_an_exception(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request(DOC_PATH).respond_with_data(
        provider_fixture("gdelt", "rate-limited_http429.txt"), status=429, content_type="text/plain"
    )
    start, end = T0, T0 + dt.timedelta(days=1)
    answer = make(httpserver, fake).fetch(start, end, now=LATER)
    assert answer.articles.empty
    (failed,) = answer.coverage
    assert (failed.start, failed.end, failed.status) == (start, end, FAILED)
    assert "HTTP 429 (Please limit requests to one every 5 seconds.) after 3 attempts" in failed.detail
    assert len(httpserver.log) == 3


def test_gdelt_replay_shedding_every_request_gives_a_failed_window() -> None:
    with ReplayServer() as server:
        server.set_faults({"shed_load": {"gdelt": 1.0}})
        client = GdeltClient(server.base_url("gdelt"), rate_limited=False, options={"history_days": 36500})
        answer = client.fetch(T0, T0 + dt.timedelta(hours=6), now=LATER)
        raw = requests.get(f"{server.base_url('gdelt')}{DOC_PATH}", params={"query": QUERY}, timeout=5)
    assert [w.status for w in answer.coverage] == [FAILED] and answer.articles.empty
    assert raw.status_code == 429 and raw.text == THROTTLE_MESSAGE
    assert raw.headers["Content-Type"].startswith("text/plain")


def test_gdelt_one_failing_sub_window_does_not_lose_the_others(httpserver: HTTPServer, fake: FakeTime) -> None:
    start, end = T0, T0 + dt.timedelta(days=10)
    middle = ts(start) + 5 * DAY

    def second_half_sheds(request: Request) -> Response | None:
        if parse_gdelt_time(request.args["startdatetime"]) >= middle:
            return Response(THROTTLE_MESSAGE, status=429, content_type="text/plain")
        return None

    serve_bundled(httpserver, answer=second_half_sheds)
    answer = make(httpserver, fake).fetch(start, end, now=LATER)
    first_half = with_url(start, _dt(middle))
    assert [(w.start, w.end, w.status) for w in answer.coverage] == [
        (start, _dt(middle), OK),
        (_dt(middle), end, FAILED),
    ]
    assert answer.coverage[0].articles == len(first_half)
    assert {item["url"] for item in first_half} <= set(answer.articles["url"])


# ------------------------------------------------------------------------------------ throttling and back-off


def test_gdelt_sends_one_request_every_5_seconds_when_rate_limited(httpserver: HTTPServer, fake: FakeTime) -> None:
    sent: list[float] = []
    serve_bundled(httpserver, on_request=lambda request: sent.append(fake.now))
    make(httpserver, fake, rate_limited=True).fetch(T0, T0 + dt.timedelta(days=10), now=LATER)
    assert len(sent) == 5
    assert sent[0] == 1000.0  # the first goes at once
    assert all(later - earlier >= 5.0 - 1e-9 for earlier, later in itertools.pairwise(sent))
    assert [round(s, 6) for s in fake.sleeps] == [5.0] * 4


@pytest.mark.parametrize("rate_limited", [True, False])
def test_gdelt_backs_off_long_on_429_when_rate_limited_and_briefly_when_not(
    httpserver: HTTPServer, fake: FakeTime, rate_limited: bool
) -> None:
    refusals = iter(range(2))

    def two_429s(request: Request) -> Response | None:
        if next(refusals, None) is not None:
            return Response(
                provider_fixture("gdelt", "rate-limited_http429.txt"), status=429, content_type="text/plain"
            )
        return None

    serve_bundled(httpserver, answer=two_429s)
    client = make(httpserver, fake, rate_limited=rate_limited)
    answer = client.fetch(T0, T0 + dt.timedelta(hours=6), now=LATER)
    stats = client.http.stats()
    assert [w.status for w in answer.coverage] == [OK] and len(httpserver.log) == 3
    assert stats["retries"] == 2
    if rate_limited:  # equal jitter from a 10 s base: 5-10 s, then 10-20 s, before the 5 s spacing
        assert stats["retry_wait_seconds"] >= 15.0
        assert client.http.max_attempts >= 5
    else:
        assert stats["retry_wait_seconds"] <= 0.4


def test_gdelt_throttle_notice_with_http_200_is_retried(httpserver: HTTPServer, fake: FakeTime) -> None:
    first = iter([True])

    def notice_once(request: Request) -> Response | None:
        if next(first, False):
            return Response(THROTTLE_MESSAGE, status=200, content_type="text/html; charset=utf-8")
        return None

    serve_bundled(httpserver, answer=notice_once)
    answer = make(httpserver, fake).fetch(T0, T0 + dt.timedelta(hours=6), now=LATER)
    assert [w.status for w in answer.coverage] == [OK] and len(httpserver.log) == 2
    assert len(answer.articles) == len(with_url(T0, T0 + dt.timedelta(hours=6)))


# ------------------------------------------------------------------------------------ answers and errors


def test_gdelt_rejected_query_with_http_200_plain_text_is_failed_and_not_retried(
    httpserver: HTTPServer, fake: FakeTime
) -> None:
    httpserver.expect_request(DOC_PATH).respond_with_data(
        provider_fixture("gdelt", "error_or-not-in-parentheses_http200.txt"), content_type="text/html; charset=utf-8"
    )
    answer = make(httpserver, fake).fetch(T0, T0 + dt.timedelta(days=1), now=LATER)
    (failed,) = answer.coverage
    assert failed.status == FAILED and failed.detail == f"GDELT rejected the query: {OR_MESSAGE}"
    assert len(httpserver.log) == 1


def test_gdelt_no_match_answer_is_covered_with_no_articles(httpserver: HTTPServer, fake: FakeTime) -> None:
    httpserver.expect_request(DOC_PATH).respond_with_data(
        provider_fixture("gdelt", "artlist_no-match.json", raw=True), content_type="application/json"
    )
    answer = make(httpserver, fake).fetch(T0, T0 + dt.timedelta(days=1), now=LATER)
    assert answer.articles.empty
    assert [(w.status, w.articles, w.detail) for w in answer.coverage] == [(OK, 0, "")]


def test_gdelt_truncated_json_is_retried(httpserver: HTTPServer, fake: FakeTime) -> None:
    body = provider_fixture("gdelt", "artlist_2022-06-01T00_bundled.json", raw=True)
    httpserver.expect_ordered_request(DOC_PATH).respond_with_data(body[: len(body) // 2])
    httpserver.expect_ordered_request(DOC_PATH).respond_with_data(body, content_type="application/json")
    answer = make(httpserver, fake).fetch(T0, T0 + dt.timedelta(hours=2), now=LATER)
    assert len(answer.articles) == 3 and len(httpserver.log) == 2


def test_gdelt_bundled_artlist_fixture_parses_into_raw_news_rows() -> None:
    text = provider_fixture("gdelt", "artlist_2022-06-01T00_bundled.json", raw=True)
    rows = GdeltClient("http://unused.invalid", options={"history_days": 90})._parse(text)
    items = with_url(T0, T0 + dt.timedelta(hours=2))
    assert [row["url"] for row in rows] == [item["url"] for item in items]
    assert [row["title"] for row in rows] == [item["title"] for item in items]
    assert [row["published_at"] for row in rows] == [item["published_on"] for item in items]
    assert rows[0]["source"] == "cryptopotato.com" and rows[0]["body"] == "" and rows[0]["provider"] == "gdelt"
    assert (
        GdeltClient("http://unused.invalid")._parse(provider_fixture("gdelt", "artlist_no-match.json", raw=True)) == []
    )


def test_gdelt_article_without_a_valid_seendate_fails_its_window(httpserver: HTTPServer, fake: FakeTime) -> None:
    body = provider_fixture("gdelt", "artlist_2022-06-01T00_bundled.json")
    body["articles"][1]["seendate"] = "2022-06-01 00:45"
    httpserver.expect_request(DOC_PATH).respond_with_json(body)
    answer = make(httpserver, fake).fetch(T0, T0 + dt.timedelta(hours=2), now=LATER)
    assert [w.status for w in answer.coverage] == [FAILED] and "seendate" in answer.coverage[0].detail
    assert len(httpserver.log) == 1


def test_gdelt_requests_are_well_formed_half_open_windows(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    make(httpserver, fake).fetch(T0, T0 + dt.timedelta(hours=2), now=LATER)
    (request,) = [r for r, _ in httpserver.log]
    assert request.args["startdatetime"] == "20220601000000"
    assert request.args["enddatetime"] == "20220601015959"
    assert request.args["maxrecords"] == "250"
    assert query_error(request.args["query"]) is None  # OR'd terms in parentheses, no short keyword


def test_gdelt_probe_asks_for_one_article_of_the_last_hour(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    now = dt.datetime(2022, 6, 1, 2, tzinfo=UTC)
    assert make(httpserver, fake).probe(now) == "1 article in the last hour (asked for 1)"
    (request,) = [r for r, _ in httpserver.log]
    assert (request.args["startdatetime"], request.args["enddatetime"], request.args["maxrecords"]) == (
        "20220601010000",
        "20220601015959",
        "1",
    )


# ------------------------------------------------------------------------------------ the replay format


def test_gdelt_replay_answers_like_gdelt() -> None:
    with ReplayServer() as server:
        base = f"{server.base_url('gdelt')}{DOC_PATH}"

        def get(**params: str) -> requests.Response:
            return requests.get(base, params={"mode": "artlist", "format": "json", **params}, timeout=5)

        missing = get()
        unparenthesized = get(query="bitcoin OR ethereum")
        bad_time = get(query=QUERY, startdatetime="2022-06-01")
        many = get(query=QUERY, maxrecords="500", startdatetime="20220601000000", enddatetime="20220620000000")
        old = get(query=QUERY, startdatetime="20220101000000", enddatetime="20220430000000")
        desc = get(query=QUERY, sort="datedesc", maxrecords="2", startdatetime="20220601000000",
                   enddatetime="20220601015959")  # fmt: skip
        env = server.env()
    for answer in (missing, unparenthesized, bad_time):
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    assert unparenthesized.text == OR_MESSAGE
    assert len(many.json()["articles"]) == MAX_RECORDS
    assert all(a["language"] == "English" and a["url"] for a in many.json()["articles"])
    assert old.json() == {}
    items = with_url(T0, T0 + dt.timedelta(hours=2))
    assert [a["url"] for a in desc.json()["articles"]] == [items[-1]["url"], items[-2]["url"]]
    assert env[HISTORY_ENV] == "36500" and env["CRYPTO_ASSETS_GDELT_URL"] == server.base_url("gdelt")


def test_gdelt_replay_never_serves_rows_without_a_url() -> None:
    start, end = dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 8, 2, tzinfo=UTC)
    everything = bundled_news_index().between(ts(start), ts(end))
    assert any(not item["url"] for item in everything)  # Reuters rows
    with ReplayServer() as server:
        answer = GdeltClient(server.base_url("gdelt"), rate_limited=False, options={"history_days": 36500}).fetch(
            dt.datetime(2022, 6, 20, tzinfo=UTC), dt.datetime(2022, 6, 27, tzinfo=UTC), now=LATER
        )
    assert (answer.articles["url"] != "").all()
    assert len(answer.articles) == len(
        with_url(dt.datetime(2022, 6, 20, tzinfo=UTC), dt.datetime(2022, 6, 27, tzinfo=UTC))
    )


# ------------------------------------------------------------------------------------ settings and registry


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "", "1.5"])
def test_gdelt_history_days_must_be_a_positive_integer(raw: str) -> None:
    with pytest.raises(ConfigError, match=HISTORY_ENV):
        parse_history_days(HISTORY_ENV, raw)
    with pytest.raises(ConfigError, match=HISTORY_ENV):
        load_settings({HISTORY_ENV: raw})


def test_gdelt_history_days_comes_from_the_environment_with_a_default_of_90() -> None:
    assert load_settings({}).provider_options["gdelt"]["history_days"] == 90
    assert load_settings({HISTORY_ENV: "30"}).provider_options["gdelt"]["history_days"] == 30
    assert GdeltClient("http://x.invalid").history_days == 90


def test_registry_entry_declares_gdelts_limit_url_variable_and_client() -> None:
    """GDELT's own registry entry (the default orders are checked for every kind in test_registry.py)."""
    assert registry.provider("gdelt") is PROVIDER and PROVIDER.kinds == ("news",)
    assert PROVIDER.rate_limit.seconds_per_request == 5.0
    assert registry.provider("gdelt").url_env == "CRYPTO_ASSETS_GDELT_URL"
    client = registry.provider("gdelt").client(
        "news", registry.ClientConfig(base_url="http://x.invalid", options={"history_days": 7})
    )
    assert isinstance(client, GdeltClient) and client.history_days == 7


def test_gdelt_urls_in_the_log_are_plain_query_strings(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_bundled(httpserver)
    make(httpserver, fake).fetch(T0, T0 + dt.timedelta(hours=1), now=LATER)
    (request,) = [r for r, _ in httpserver.log]
    query = parse_qs(urlsplit(request.url).query)
    assert query["query"] == [QUERY] and query["format"] == ["json"]
