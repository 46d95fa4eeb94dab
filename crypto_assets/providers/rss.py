"""RSS 2.0 feeds (CoinDesk, Cointelegraph, Decrypt): latest items only, parsed with feedparser.

Feeds are fetched as text through HttpClient (provider ``rss``: retries, rate limit, breaker) and
parsed from that text, so feedparser never opens a connection itself. One failing feed does not stop
the others (its error is logged and kept in ``last_errors``); only when every feed fails is the window
failed. Items without a title or a parseable pubDate are skipped with a log line.

Coverage: a feed lists only its latest items, so a fetch covers from its oldest item to the fetch time;
what lies before is ``skipped`` (never "no news").
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import feedparser
import pandas as pd

from crypto_assets.config import http_url
from crypto_assets.errors import ProviderError
from crypto_assets.providers.news import (
    FAILED,
    SKIPPED,
    BaseNewsClient,
    CoverageWindow,
    answered_from,
    raw_news_frame,
    text_field,
    window,
)
from crypto_assets.providers.prices import bad_body, epoch_seconds
from crypto_assets.providers.registry import NEWS, Option, ProviderSpec, RateLimit
from crypto_assets.replay.data import NewsIndex
from crypto_assets.replay.wire import ReplayRequest, ReplayRoutes, Response, html_response

log = logging.getLogger("crypto_assets.providers.news")


# The closing tag of an RSS 2.0, Atom or RSS 1.0 (RDF) document at the end of the body, where only whitespace
# and comments may follow (WordPress caching plugins append an HTML comment after </rss>).
_FEED_END = re.compile(r"</(?:rss|feed|rdf:rdf)\s*>(?:\s|<!--.*?-->)*$", re.IGNORECASE | re.DOTALL)


def _check_feed_text(text: str) -> None:
    head = text.lstrip()[:512].lower()
    if not head:
        raise bad_body("rss", "empty body where a feed was expected", retryable=True)
    if head.startswith(("<!doctype html", "<html")):
        raise bad_body(
            "rss", f"HTML page where a feed was expected (first 80 chars: {text.strip()[:80]})", retryable=True
        )
    # A body cut short still parses (feedparser is lenient) and would silently lose the items after the cut.
    if not _FEED_END.search(text[-4096:]):
        raise bad_body(
            "rss",
            f"truncated feed: no closing root tag (last 80 chars: {' '.join(text.split())[-80:]})",
            retryable=True,
        )


DEFAULT_FEEDS: tuple[str, ...] = (
    "https://www.coindesk.com/arc/outboundfeeds/rss/",
    "https://cointelegraph.com/rss",
    "https://decrypt.co/feed",
)
FEEDS_ENV = "CRYPTO_ASSETS_RSS_FEEDS"
FEED_THREADS = 4


def parse_feeds(variable: str, raw: str) -> tuple[str, ...]:
    """Comma-separated feed URLs."""
    return tuple(http_url(variable, feed) for feed in raw.split(","))


class RssClient(BaseNewsClient):
    name = "rss"

    def __init__(self, base_url: str = "", **kwargs: Any) -> None:
        """No base URL: the feeds (``options["feeds"]``, default DEFAULT_FEEDS) are full URLs."""
        super().__init__(base_url, **kwargs)
        self.feed_urls = list(self.options.get("feeds", DEFAULT_FEEDS))
        self.last_errors: dict[str, str] = {}

    def _fetch(
        self, start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> tuple[pd.DataFrame, list[CoverageWindow]]:
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        self.last_errors = {}
        rows: list[dict[str, Any]] = []
        oldest: int | None = None
        # Feeds are asked concurrently (a feed that is down retries without holding up the others; the rate limiter
        # and the breaker are shared) and read in the configured order.
        with ThreadPoolExecutor(max_workers=min(FEED_THREADS, len(self.feed_urls)) or 1) as pool:
            answers = [pool.submit(self._get_feed, feed_url) for feed_url in self.feed_urls]
        for feed_url, answer in zip(self.feed_urls, answers, strict=True):
            try:
                text = answer.result()
            except ProviderError as exc:
                log.warning("rss: feed failed, continuing with the others: %s", exc)
                self.last_errors[feed_url] = str(exc)
                continue
            items = self.parse_feed(text, feed_url)
            if items:
                first = min(row["published_at"] for row in items)
                oldest = first if oldest is None else min(oldest, first)
            rows.extend(row for row in items if start_s <= row["published_at"] < end_s)
        failures = "; ".join(self.last_errors.values())
        if self.feed_urls and len(self.last_errors) == len(self.feed_urls):
            return raw_news_frame([]), [window(start, end, FAILED, detail=f"every feed failed: {failures}")]
        detail = f"{len(self.last_errors)} of {len(self.feed_urls)} feeds failed: {failures}" if failures else ""
        listed_from = datetime.fromtimestamp(oldest, UTC) if oldest is not None else end
        why = f"feeds list items from {listed_from:%Y-%m-%d %H:%M} UTC only" if oldest else "feeds are empty"
        coverage = answered_from(start, end, listed_from, len(rows), before=SKIPPED, why=why, detail=detail)
        return raw_news_frame(rows), coverage

    def _get_feed(self, feed_url: str) -> str:
        return self.http.get_text(feed_url, validate=_check_feed_text)

    def probe(self, now: dt.datetime) -> str:
        text = self._get_feed(self.feed_urls[0])
        return f"{len(self.parse_feed(text, self.feed_urls[0]))} items in {self.feed_urls[0]}"

    @staticmethod
    def parse_feed(text: str, feed_url: str) -> list[dict[str, Any]]:
        """Items of one feed as raw news rows (published_at in epoch seconds); bad items skipped with a log."""
        parsed = feedparser.parse(text)
        if parsed.get("bozo") and not parsed.entries:
            log.warning("rss: %s is not a readable feed: %s", feed_url, parsed.get("bozo_exception"))
        feed_title = text_field(parsed.feed.get("title")) if parsed.get("feed") else ""
        source = feed_title or (urlsplit(feed_url).hostname or feed_url)
        rows: list[dict[str, Any]] = []
        for index, entry in enumerate(parsed.entries):
            title = text_field(entry.get("title"))
            link = text_field(entry.get("link"))
            if not title:
                log.info("rss: %s item %d (%s) has no title; skipped", feed_url, index, link or "no link")
                continue
            when = entry.get("published_parsed") or entry.get("updated_parsed")
            if when is None:
                log.info("rss: %s item %r has no parseable pubDate; skipped", feed_url, title[:80])
                continue
            tags = [text_field(tag.get("term")) for tag in entry.get("tags") or []]
            rows.append(
                {
                    "published_at": calendar.timegm(when),
                    "source": source,
                    "title": title,
                    "body": text_field(entry.get("summary") or entry.get("description")),
                    "url": link,
                    "provider": "rss",
                    "categories": "|".join(tag for tag in tags if tag),
                    "external_id": text_field(entry.get("id")) or link or title,
                }
            )
        return rows


# ------------------------------------------------------------------------------------------------ replay


@dataclass(frozen=True)
class Feed:
    name: str
    title: str
    link: str
    sources: frozenset[str]


# Publisher feeds take the publisher's own rows; "reddit" takes the other r/CryptoCurrency link posts.
# Reuters rows (no URL; Reuters has no public RSS feed) are in no feed.
FEEDS: tuple[Feed, ...] = (
    Feed(
        "coindesk",
        "CoinDesk: Bitcoin, Ethereum, Crypto News and Price Data",
        "https://www.coindesk.com/",
        frozenset({"coindesk.com"}),
    ),
    Feed(
        "cointelegraph",
        "Cointelegraph.com News",
        "https://cointelegraph.com",
        frozenset({"CoinTelegraph", "cointelegraph.com"}),
    ),
    Feed("decrypt", "Decrypt", "https://decrypt.co", frozenset({"decrypt.co"})),
    Feed("cryptopotato", "CryptoPotato", "https://cryptopotato.com", frozenset({"CryptoPotato", "cryptopotato.com"})),
    Feed("cryptonews", "Cryptonews.com", "https://cryptonews.com", frozenset({"CryptoNews", "cryptonews.com"})),
    Feed("reddit", "r/CryptoCurrency link posts", "https://www.reddit.com/r/CryptoCurrency/", frozenset()),
)
REDDIT_DATASET_PREFIX = "cryptobuzz_reddit"
ITEMS_PER_FEED = 20
TRACKING_SUFFIX = "utm_source=rss&utm_medium=rss"


def feed_of(source: str, dataset: str) -> str | None:
    for feed in FEEDS:
        if source in feed.sources:
            return feed.name
    return "reddit" if dataset.startswith(REDDIT_DATASET_PREFIX) else None


def feed_members(news: NewsIndex) -> dict[str, list[int]]:
    """Indexes into ``news.items`` (newest first) of each feed's items."""
    members: dict[str, list[int]] = {feed.name: [] for feed in FEEDS}
    for index, item in enumerate(news.items):
        feed = feed_of(item["source"], item["dataset"])
        if feed is not None:
            members[feed].append(index)
    return members


def rss_link(url: str) -> str:
    """The article URL with the tracking suffix that real feeds add (unless it already has one)."""
    if "utm_source=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}{TRACKING_SUFFIX}"


class RssReplay(ReplayRoutes):
    """``/<feed>.xml``: the latest 20 items at or before the clock, RFC-822 pubDate, tracking links."""

    def route(self, request: ReplayRequest) -> Response:
        path = request.path
        if not (path.startswith("/") and path.endswith(".xml") and path.count("/") == 1):
            return self.not_found()
        name = path[1:-4]
        feed = next((f for f in FEEDS if f.name == name), None)
        if feed is None:
            return html_response(404, "404 Not Found", f"No feed named {escape(name)}.")
        news = request.data.news
        first = news.newest_at_or_before(request.clock_s)
        indexes = [i for i in news.derived("rss_feeds", feed_members)[name] if i >= first][:ITEMS_PER_FEED]
        build = datetime.fromtimestamp(request.clock_s, UTC)
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
            "<channel>",
            f"<title>{escape(feed.title)}</title>",
            f"<link>{escape(feed.link)}</link>",
            f"<description>{escape(feed.title)} (replayed from bundled recorded data)</description>",
            "<language>en</language>",
            f"<lastBuildDate>{format_datetime(build)}</lastBuildDate>",
        ]
        for i in indexes:
            item = news.items[i]
            published = datetime.fromtimestamp(item["published_on"], UTC)
            parts.append("<item>")
            parts.append(f"<title>{escape(item['title'])}</title>")
            if item["url"]:
                parts.append(f"<link>{escape(rss_link(item['url']))}</link>")
            parts.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
            parts.append(f"<pubDate>{format_datetime(published)}</pubDate>")
            parts.append(f"<description>{escape(item['body'])}</description>")
            parts.append("</item>")
        parts += ["</channel>", "</rss>", ""]
        return Response(200, "\n".join(parts).encode("utf-8"), "application/rss+xml; charset=utf-8")

    def env(self, spec: ProviderSpec, base_url: str) -> dict[str, str]:
        return {FEEDS_ENV: ",".join(f"{base_url}/{feed.name}.xml" for feed in FEEDS)}


PROVIDER = ProviderSpec(
    name="rss",
    kinds=(NEWS,),
    title="RSS feeds (CoinDesk, Cointelegraph, Decrypt)",
    public_url="",
    docs=("https://www.rssboard.org/rss-specification",),
    rate_limit=RateLimit(2.0, 1.0, "none published; polite: 2 requests per second"),
    history="the latest items only (a day or two): covers from its oldest item to the fetch time",
    access="keyless; feeds chosen with CRYPTO_ASSETS_RSS_FEEDS",
    news_client=RssClient,
    replay=RssReplay(),
    default_rank=2,
    options=(Option("feeds", FEEDS_ENV, DEFAULT_FEEDS, parse_feeds),),
)
