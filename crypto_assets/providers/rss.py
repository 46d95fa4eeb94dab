"""RSS 2.0 feeds (CoinDesk, Cointelegraph, Decrypt): latest items only, parsed with feedparser.

Feeds are fetched as text through HttpClient (provider ``rss``: retries, rate limit, breaker) and
parsed from that text, so feedparser never opens a connection itself. One failing feed does not stop
the others (its error is logged and kept in ``last_errors``); only when every feed fails is a
ProviderError raised. Items without a title or a parseable pubDate are skipped with a log line.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pandas as pd

from crypto_assets.errors import ProviderError
from crypto_assets.http import HttpClient
from crypto_assets.providers.news_cryptocompare import raw_news_frame, text_field
from crypto_assets.providers.prices import bad_body, epoch_seconds

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


class RssClient:
    name = "rss"
    rate_per_second = 2.0

    def __init__(self, feed_urls: Sequence[str], *, http: HttpClient | None = None, rate_limited: bool = True) -> None:
        self.feed_urls = list(feed_urls)
        rate = self.rate_per_second if rate_limited else None
        self.http = http or HttpClient(self.name, "", rate_per_second=rate)
        self.last_errors: dict[str, str] = {}

    def fetch(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        self.last_errors = {}
        rows: list[dict[str, Any]] = []
        for feed_url in self.feed_urls:
            try:
                text = self.http.get_text(feed_url, validate=_check_feed_text)
            except ProviderError as exc:
                log.warning("rss: feed failed, continuing with the others: %s", exc)
                self.last_errors[feed_url] = str(exc)
                continue
            rows.extend(row for row in self.parse_feed(text, feed_url) if start_s <= row["published_at"] < end_s)
        if self.feed_urls and len(self.last_errors) == len(self.feed_urls):
            raise ProviderError(
                self.name,
                ", ".join(self.http.redact(url) for url in self.feed_urls),
                "every feed failed: " + " | ".join(self.last_errors.values()),
                retryable=True,
            )
        return raw_news_frame(rows)

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
