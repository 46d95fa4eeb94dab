"""News clients against a local HTTP server.

The articles are real (55 headlines of 2022-05-04, see fixtures/slices/README.md, and the answers in
fixtures/providers/<name>/: the recorded CryptoCompare news item, feeds and pages rendered by the replay from
bundled real articles, documented error bodies). The server functions below render them in each provider's format:
CryptoCompare news pages, RSS 2.0 feeds (Cointelegraph-style CDATA, dc:creator, categories), and
NewsAPI /v2/everything pages. Only time (sleep, clock) is injected.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import itertools
import json
import logging
import random
from xml.sax.saxutils import escape

import pandas as pd
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.http import HttpClient
from crypto_assets.providers import registry
from crypto_assets.providers.cryptocompare import CryptoCompareNewsClient
from crypto_assets.providers.news import RAW_NEWS_COLUMNS
from crypto_assets.providers.newsapi import NewsApiClient
from crypto_assets.providers.rss import ITEMS_PER_FEED, RssClient, feed_members
from crypto_assets.replay.data import bundled_news_index
from crypto_assets.replay.server import ReplayServer
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import SLICES, provider_fixture

with (SLICES / "news_2022-05-04_slice.csv").open(newline="", encoding="utf-8") as fh:
    NEWS = list(csv.DictReader(fh))
UTC = dt.UTC
SECRET = "newsKEY-00112233445566"


def epoch(row: dict) -> int:
    return int(dt.datetime.fromisoformat(row["published_at"]).timestamp())


def http_for(provider: str, base_url: str, fake: FakeTime, **kwargs) -> HttpClient:
    options = {"rate_per_second": 1000.0, "sleep": fake.sleep, "clock": fake.clock, "rng": random.Random(3)}
    options.update(kwargs)
    return HttpClient(provider, base_url, **options)


def json_response(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def in_window(start: dt.datetime, end: dt.datetime) -> list[dict]:
    return [row for row in NEWS if start.timestamp() <= epoch(row) < end.timestamp()]


# --------------------------------------------------------------------------------------------- CryptoCompare


def cc_item(index: int, row: dict) -> dict:
    return {
        "id": str(7_000_000 + index),
        "guid": row["url"],
        "published_on": epoch(row),
        "title": row["title"],
        "url": row["url"],
        "source": row["source"].lower(),
        "body": row["body"],
        "tags": "News",
        "categories": "BTC|Market" if "bitcoin" in row["title"].lower() else "",
        "lang": "EN",
        "source_info": {"name": row["source"], "lang": "EN"},
    }


CC_ITEMS = sorted((cc_item(i, row) for i, row in enumerate(NEWS)), key=lambda item: -item["published_on"])


def serve_cc_news(server: HTTPServer, items: list[dict], page_size: int = 10, key: str | None = None) -> None:
    """Newest first, ``published_on <= lTs`` (inclusive, so page edges repeat and must be de-duplicated)."""

    def handle(request: Request) -> Response:
        assert request.args["lang"] == "EN"
        if key is not None:
            assert request.headers["authorization"] == f"Apikey {key}"
        lts = int(request.args["lTs"])
        page = [item for item in items if item["published_on"] <= lts][:page_size]
        return json_response({"Type": 100, "Message": "News list successfully returned", "Promoted": [], "Data": page})

    server.expect_request("/data/v2/news/").respond_with_handler(handle)


def test_cc_news_pages_back_dedups_and_keeps_the_window(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_cc_news(httpserver, CC_ITEMS, key=SECRET)
    client = CryptoCompareNewsClient(
        httpserver.url_for("/"), api_key=SECRET, http=http_for("cryptocompare", httpserver.url_for("/"), fake)
    )
    start, end = dt.datetime(2022, 5, 4, 6, tzinfo=UTC), dt.datetime(2022, 5, 4, 20, tzinfo=UTC)
    answer = client.fetch(start, end)
    frame = answer.articles
    expected = in_window(start, end)
    assert [(w.start, w.end, w.status, w.articles) for w in answer.coverage] == [(start, end, "ok", len(expected))]
    assert 20 < len(expected) < len(NEWS)
    assert list(frame.columns) == list(RAW_NEWS_COLUMNS)
    assert str(frame["published_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["external_id"].is_unique
    assert sorted(frame["url"]) == sorted(row["url"] for row in expected)
    assert frame["published_at"].min() >= pd.Timestamp(start) and frame["published_at"].max() < pd.Timestamp(end)
    assert set(frame["provider"]) == {"cryptocompare"}
    assert set(frame["source"]) <= {"CoinTelegraph", "CryptoPotato", "CryptoNews"}
    requests = [request for request, _ in httpserver.log]
    assert int(requests[0].args["lTs"]) == int(end.timestamp())
    # each next page starts at the oldest item of the one before; it stops once a page goes before start
    assert all(int(b.args["lTs"]) < int(a.args["lTs"]) for a, b in itertools.pairwise(requests))
    assert len(requests) <= len(expected) // 9 + 2
    assert all(SECRET not in request.url for request in requests)


def test_cc_news_recorded_item_mapping(httpserver: HTTPServer, fake: FakeTime) -> None:
    item = provider_fixture("cryptocompare", "news-item_coinspeaker_recorded.json")
    serve_cc_news(httpserver, [item])
    client = CryptoCompareNewsClient(
        httpserver.url_for("/"), http=http_for("cryptocompare", httpserver.url_for("/"), fake)
    )
    frame = client.fetch(dt.datetime(2020, 1, 6, tzinfo=UTC), dt.datetime(2020, 1, 7, tzinfo=UTC)).articles
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row.published_at == pd.Timestamp(1578318742, unit="s", tz="UTC")
    assert (row.source, row.categories, row.external_id, row.provider) == (
        "CoinSpeaker",
        "BTC|Market|Regulation|Altcoin",
        "6693860",
        "cryptocompare",
    )
    assert row.title == item["title"] and row.url == item["url"]
    assert row.body == item["body"]  # entities/HTML are left for transforms.news


def test_cc_news_stops_when_a_page_adds_nothing(httpserver: HTTPServer, fake: FakeTime) -> None:
    page = CC_ITEMS[:5]
    httpserver.expect_request("/data/v2/news/").respond_with_json({"Data": page})  # ignores lTs
    client = CryptoCompareNewsClient(
        httpserver.url_for("/"), http=http_for("cryptocompare", httpserver.url_for("/"), fake)
    )
    answer = client.fetch(dt.datetime(2022, 5, 1, tzinfo=UTC), dt.datetime(2022, 5, 6, tzinfo=UTC))
    assert len(answer.articles) == 5 and len(httpserver.log) == 2
    assert [w.status for w in answer.coverage] == ["ok"]  # nothing older exists: the whole window is answered


def test_cc_news_error_envelope_and_untitled_items(httpserver: HTTPServer, fake: FakeTime, caplog) -> None:
    url = httpserver.url_for("/")
    error = provider_fixture("cryptocompare", "error_auth-key-needed_http200-recorded.json")
    httpserver.expect_ordered_request("/data/v2/news/").respond_with_json(error)
    client = CryptoCompareNewsClient(url, http=http_for("cryptocompare", url, fake))
    day = (dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC))
    failed = client.fetch(*day)
    assert failed.articles.empty
    assert [(w.start, w.end, w.status) for w in failed.coverage] == [(*day, "failed")]
    assert "error response: You need a valid auth key" in failed.coverage[0].detail

    untitled = dict(CC_ITEMS[1], title="  ")
    httpserver.expect_request("/data/v2/news/").respond_with_json({"Data": [CC_ITEMS[0], untitled, CC_ITEMS[2]]})
    with caplog.at_level(logging.INFO, logger="crypto_assets.providers.news"):
        frame = client.fetch(dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC)).articles
    assert sorted(frame["external_id"]) == sorted([CC_ITEMS[0]["id"], CC_ITEMS[2]["id"]])
    assert any("without title" in r.getMessage() for r in caplog.records)

    httpserver.clear()
    httpserver.expect_request("/data/v2/news/").respond_with_json({"Data": [dict(CC_ITEMS[0], published_on="soon")]})
    bad = client.fetch(dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC))
    assert bad.coverage[0].status == "failed"
    assert "published_on 'soon' is not an epoch time at index 0" in bad.coverage[0].detail


def test_cc_news_failure_part_way_keeps_the_newer_part_covered(httpserver: HTTPServer, fake: FakeTime) -> None:
    """Pages back from the end; when a later page fails, what was reached stays covered and the rest is failed."""
    url = httpserver.url_for("/")
    first = CC_ITEMS[:10]
    httpserver.expect_ordered_request("/data/v2/news/").respond_with_json({"Data": first})
    httpserver.expect_request("/data/v2/news/").respond_with_data("down", status=503)
    client = CryptoCompareNewsClient(url, http=http_for("cryptocompare", url, fake, max_attempts=2))
    start, end = dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC)
    answer = client.fetch(start, end)
    reached = dt.datetime.fromtimestamp(min(item["published_on"] for item in first), UTC)
    assert [(w.start, w.end, w.status) for w in answer.coverage] == [(start, reached, "failed"), (reached, end, "ok")]
    assert "HTTP 503" in answer.coverage[0].detail
    assert len(answer.articles) == 10


# --------------------------------------------------------------------------------------------- RSS


def rss_item(row: dict, *, tz_hours: int = 0, title: bool = True, pubdate: bool = True) -> str:
    when = dt.datetime.fromisoformat(row["published_at"]).astimezone(dt.timezone(dt.timedelta(hours=tz_hours)))
    parts = ["<item>"]
    if title:
        parts.append(f"<title><![CDATA[{row['title']}]]></title>")
    parts.append(f"<link>{escape(row['url'])}?utm_source=rss&amp;utm_medium=rss</link>")
    parts.append(f'<guid isPermaLink="false">{escape(row["url"])}</guid>')
    parts.append(f"<dc:creator><![CDATA[{row['source']} staff]]></dc:creator>")
    if pubdate:
        parts.append(f"<pubDate>{email.utils.format_datetime(when)}</pubDate>")
    parts.append("<category><![CDATA[Bitcoin]]></category><category><![CDATA[Markets]]></category>")
    parts.append(f"<description><![CDATA[<p>{row['body']}</p>]]></description>")
    parts.append("</item>")
    return "".join(parts)


def rss_feed(title: str, items: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title><![CDATA[{title}]]></title><link>https://example.invalid</link>"
        f"{''.join(items)}</channel></rss>"
    )


COINTELEGRAPH = [row for row in NEWS if row["source"] == "CoinTelegraph"]
CRYPTOPOTATO = [row for row in NEWS if row["source"] == "CryptoPotato"]


def test_rss_parses_feeds_and_filters_window(httpserver: HTTPServer, fake: FakeTime, caplog) -> None:
    ct_items = [rss_item(row, tz_hours=2 if i % 2 else 0) for i, row in enumerate(COINTELEGRAPH)]
    ct_items.append(rss_item(NEWS[0], title=False))
    ct_items.append(rss_item(NEWS[1], pubdate=False))
    # one-shot, not ordered: the feeds are fetched concurrently, and an ordered handler fails the server for good
    # when the other feed's request comes first
    httpserver.expect_oneshot_request("/cointelegraph/rss").respond_with_data("busy", status=503)
    httpserver.expect_request("/cointelegraph/rss").respond_with_data(
        rss_feed("Cointelegraph.com News", ct_items), content_type="application/rss+xml; charset=utf-8"
    )
    httpserver.expect_request("/cryptopotato/feed").respond_with_data(
        rss_feed("CryptoPotato", [rss_item(row) for row in CRYPTOPOTATO]), content_type="application/rss+xml"
    )
    feeds = [httpserver.url_for("/cointelegraph/rss"), httpserver.url_for("/cryptopotato/feed")]
    client = RssClient(options={"feeds": feeds}, http=http_for("rss", "", fake))
    start, end = dt.datetime(2022, 5, 4, 3, tzinfo=UTC), dt.datetime(2022, 5, 4, 21, tzinfo=UTC)
    with caplog.at_level(logging.INFO, logger="crypto_assets.providers.news"):
        answer = client.fetch(start, end)
    frame = answer.articles
    assert [(w.status, w.start, w.end) for w in answer.coverage] == [("ok", start, end)]

    expected = [row for row in in_window(start, end) if row["source"] in ("CoinTelegraph", "CryptoPotato")]
    assert len(frame) == len(expected) > 10
    assert list(frame.columns) == list(RAW_NEWS_COLUMNS)
    by_guid = {row["url"]: row for row in expected}
    for row in frame.itertuples():
        source_row = by_guid[row.external_id]
        assert row.published_at == pd.Timestamp(source_row["published_at"])  # +02:00 pubDates converted to UTC
        assert row.title == source_row["title"]
        assert row.url.startswith(source_row["url"]) and "utm_source" in row.url  # canonicalised later
        assert row.categories == "Bitcoin|Markets" and row.provider == "rss"
    assert set(frame["source"]) == {"Cointelegraph.com News", "CryptoPotato"}
    assert client.last_errors == {} and client.http.stats()["retries"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("has no title; skipped" in m for m in messages)
    assert any("has no parseable pubDate; skipped" in m for m in messages)

    # a feed lists its latest items only: before its oldest item nothing is known (skipped), after it, covered
    earlier = dt.datetime(2022, 5, 3, tzinfo=UTC)
    oldest = min(pd.Timestamp(row["published_at"]) for row in COINTELEGRAPH + CRYPTOPOTATO).to_pydatetime()
    answer = client.fetch(earlier, end)
    assert [(w.status, w.start, w.end) for w in answer.coverage] == [("skipped", earlier, oldest), ("ok", oldest, end)]


def test_rss_one_feed_down_others_served_all_down_fails_the_window(httpserver: HTTPServer, fake: FakeTime) -> None:
    page = "<!DOCTYPE html><html><body>Attention Required! | Cloudflare</body></html>"
    httpserver.expect_request("/blocked").respond_with_data(page, content_type="text/html")
    httpserver.expect_request("/ok").respond_with_data(rss_feed("CryptoPotato", [rss_item(r) for r in CRYPTOPOTATO]))
    feeds = [httpserver.url_for("/blocked"), httpserver.url_for("/ok")]
    client = RssClient(options={"feeds": feeds}, http=http_for("rss", "", fake, max_attempts=2))
    day = (dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC))
    answer = client.fetch(*day)
    assert len(answer.articles) == len(CRYPTOPOTATO)
    assert list(client.last_errors) == [httpserver.url_for("/blocked")]
    assert "HTML page where a feed was expected" in client.last_errors[httpserver.url_for("/blocked")]
    assert answer.coverage[-1].status == "ok" and "1 of 2 feeds failed" in answer.coverage[-1].detail

    client = RssClient(options={"feeds": feeds[:1]}, http=http_for("rss", "", fake, max_attempts=2))
    answer = client.fetch(*day)
    assert [(w.start, w.end, w.status) for w in answer.coverage] == [(*day, "failed")]
    assert "every feed failed:" in answer.coverage[0].detail
    assert "HTML page where a feed was expected" in answer.coverage[0].detail


def test_rss_feed_rendered_by_the_replay_is_read_by_the_client(httpserver: HTTPServer, fake: FakeTime) -> None:
    """fixtures/providers/rss: the replay's Decrypt feed stays what the replay renders, and the client reads it."""
    feed = provider_fixture("rss", "decrypt_rendered-by-replay.xml")
    assert ReplayServer().handle("GET", "/rss/decrypt.xml", b"").body.decode("utf-8") == feed
    news = bundled_news_index()
    bundled = [news.items[i] for i in feed_members(news)["decrypt"]][:ITEMS_PER_FEED]

    httpserver.expect_request("/decrypt.xml").respond_with_data(feed, content_type="application/rss+xml; charset=utf-8")
    client = RssClient(options={"feeds": [httpserver.url_for("/decrypt.xml")]}, http=http_for("rss", "", fake))
    start, end = dt.datetime(2022, 7, 1, tzinfo=UTC), dt.datetime(2022, 8, 2, tzinfo=UTC)
    answer = client.fetch(start, end, now=end)
    frame = answer.articles.sort_values("published_at", ascending=False)
    assert frame["title"].tolist() == [item["title"] for item in bundled] and len(frame) == ITEMS_PER_FEED
    assert frame["external_id"].tolist() == [item["guid"] for item in bundled]
    assert frame["published_at"].tolist() == [
        pd.Timestamp(item["published_on"], unit="s", tz="UTC") for item in bundled
    ]
    assert set(frame["source"]) == {"Decrypt"} and set(frame["provider"]) == {"rss"}
    oldest = frame["published_at"].min().to_pydatetime()
    assert [(w.status, w.start, w.end) for w in answer.coverage] == [("skipped", start, oldest), ("ok", oldest, end)]


# --------------------------------------------------------------------------------------------- NewsAPI


def newsapi_article(row: dict) -> dict:
    return {
        "source": {"id": None, "name": row["source"]},
        "author": None,
        "title": row["title"],
        "description": row["body"],
        "url": row["url"],
        "urlToImage": None,
        "publishedAt": dt.datetime.fromisoformat(row["published_at"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "content": row["body"][:40] + "... [+1234 chars]",
    }


def serve_newsapi(server: HTTPServer, rows: list[dict], *, max_results: int | None = None) -> None:
    articles = sorted((newsapi_article(row) for row in rows), key=lambda a: a["publishedAt"], reverse=True)

    def handle(request: Request) -> Response:
        if request.headers.get("X-Api-Key") != SECRET:
            return json_response(provider_fixture("newsapi", "error_apiKeyInvalid_http401_documented.json"), 401)
        assert request.args["q"] == "crypto OR bitcoin"
        size, page = int(request.args["pageSize"]), int(request.args["page"])
        if max_results is not None and page * size > max_results:  # the live answer to passing the plan's cap
            return json_response(provider_fixture("newsapi", "error_maximumResultsReached_http426_quoted.json"), 426)
        chunk = articles[(page - 1) * size : page * size]
        return json_response({"status": "ok", "totalResults": len(articles), "articles": chunk})

    server.expect_request("/v2/everything").respond_with_handler(handle)


def test_newsapi_pages_with_key_in_header(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_newsapi(httpserver, NEWS)
    url = httpserver.url_for("/")
    client = NewsApiClient(url, api_key=SECRET, http=http_for("newsapi", url, fake))
    client.page_size = 20
    frame = client.fetch(dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC)).articles
    assert len(frame) == len(NEWS) and frame["url"].is_unique
    assert list(frame.columns) == list(RAW_NEWS_COLUMNS)
    assert set(frame["provider"]) == {"newsapi"} and set(frame["categories"]) == {""}
    requests = [request for request, _ in httpserver.log]
    assert [r.args["page"] for r in requests] == ["1", "2", "3"]
    assert requests[0].args["from"] == "2022-05-04T00:00:00Z" and requests[0].args["to"] == "2022-05-05T00:00:00Z"
    assert all(SECRET not in r.url for r in requests)


def test_newsapi_result_cap_and_bad_key(httpserver: HTTPServer, fake: FakeTime) -> None:
    serve_newsapi(httpserver, NEWS, max_results=20)
    url = httpserver.url_for("/")
    client = NewsApiClient(url, api_key=SECRET, http=http_for("newsapi", url, fake))
    client.page_size = 20
    day = (dt.datetime(2022, 5, 4, tzinfo=UTC), dt.datetime(2022, 5, 5, tzinfo=UTC))
    answer = client.fetch(*day)
    assert len(answer.articles) == 20  # the plan's cap ends paging quietly...
    oldest = answer.articles["published_at"].min().to_pydatetime()
    # ...and only from the oldest article reached is the day known
    assert [(w.status, w.start, w.end) for w in answer.coverage] == [
        ("skipped", day[0], oldest),
        ("ok", oldest, day[1]),
    ]

    wrong = NewsApiClient(url, api_key="wrong-key-123", http=http_for("newsapi", url, fake))
    failed = wrong.fetch(*day)
    assert failed.coverage[0].status == "failed" and "HTTP 401: " in failed.coverage[0].detail
    assert "apiKeyInvalid" in failed.coverage[0].detail and "wrong-key-123" not in failed.coverage[0].detail


def test_newsapi_page_rendered_by_the_replay_is_read_by_the_client(httpserver: HTTPServer, fake: FakeTime) -> None:
    """fixtures/providers/newsapi: the replay's answer to the client's request for 2022-06-01 00:00-02:00 UTC."""
    page = provider_fixture("newsapi", "everything_2022-06-01T00_rendered-by-replay.json")
    httpserver.expect_request("/v2/everything").respond_with_json(page)
    url = httpserver.url_for("/")
    client = NewsApiClient(url, api_key=SECRET, http=http_for("newsapi", url, fake))
    start, end = dt.datetime(2022, 6, 1, tzinfo=UTC), dt.datetime(2022, 6, 1, 2, tzinfo=UTC)
    answer = client.fetch(start, end, now=dt.datetime(2022, 8, 2, tzinfo=UTC))
    (request,) = [request for request, _ in httpserver.log]
    replayed = ReplayServer().handle(
        "GET", f"/newsapi/v2/everything?{request.query_string.decode()}", b"", {"X-Api-Key": SECRET}
    )
    assert json.loads(replayed.body) == page  # the fixture is what the replay answers to this very request

    frame = answer.articles.sort_values("published_at", ascending=False)  # the page is newest first
    assert frame["title"].tolist() == [article["title"] for article in page["articles"]] and len(frame) == 3
    assert frame["url"].tolist() == [article["url"] for article in page["articles"]]
    assert frame["published_at"].min() >= pd.Timestamp(start) and frame["published_at"].max() < pd.Timestamp(end)
    assert [(w.status, w.start, w.end, w.articles) for w in answer.coverage] == [("ok", start, end, 3)]


def test_key_only_news_providers_are_skipped_without_their_key() -> None:
    """Built through the registry: without its key a key-only provider is never constructed, so never called."""
    clients, skipped = registry.build_clients(
        "news",
        ["newsapi", "cryptocompare", "rss"],
        urls={"newsapi": "http://127.0.0.1:9", "cryptocompare": "http://127.0.0.1:9"},
        options={},
        keys={"NEWSAPI_API_KEY": "", "CRYPTOCOMPARE_API_KEY": None},
        rate_limited=True,
    )
    assert [client.name for client in clients] == ["rss"]
    assert [item.provider for item in skipped] == ["newsapi", "cryptocompare"]
    assert "NEWSAPI_API_KEY is not set" in skipped[0].reason
