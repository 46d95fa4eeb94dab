"""NewsAPI ``GET /v2/everything`` (q=crypto OR bitcoin), key in the ``X-Api-Key`` header.

Pages of 100 articles, newest first. The free plan stops at 100 results with HTTP 426
``maximumResultsReached``; that ends paging quietly with what was collected so far.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import pandas as pd

from crypto_assets.errors import ConfigError, ProviderError
from crypto_assets.http import HttpClient, HttpStatusError
from crypto_assets.providers.news_cryptocompare import raw_news_frame, text_field
from crypto_assets.providers.prices import bad_body, collect, epoch_seconds, excerpt

log = logging.getLogger("crypto_assets.providers.news")

EVERYTHING_PATH = "/v2/everything"
QUERY = "crypto OR bitcoin"
PAGE_SIZE = 100
MAX_PAGES = 50


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> int | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return math.floor(parsed.timestamp())


class NewsApiClient:
    name = "newsapi"
    rate_per_second = 1.0
    page_size = PAGE_SIZE

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: HttpClient | None = None,
        query: str = QUERY,
        rate_limited: bool = True,
    ) -> None:
        if not api_key:
            raise ConfigError("NewsAPI needs an API key: set NEWSAPI_API_KEY or drop newsapi from the news providers")
        self.base_url = base_url.rstrip("/")
        self.query = query
        rate = self.rate_per_second if rate_limited else None
        self.http = http or HttpClient(self.name, self.base_url, rate_per_second=rate)
        self._headers = {"X-Api-Key": api_key}

    def fetch(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        rows: dict[str, dict[str, Any]] = {}
        for page in range(1, MAX_PAGES + 1):
            params = {
                "q": self.query,
                "from": _iso(start_s),
                "to": _iso(end_s),
                "language": "en",
                "sortBy": "publishedAt",
                "pageSize": self.page_size,
                "page": page,
            }
            result = self._get(params)
            if result is None:
                break
            articles, total = result
            for row in articles:
                rows.setdefault(row["external_id"], row)
            if not articles or page * self.page_size >= total:
                break
        kept = [row for row in rows.values() if start_s <= row["published_at"] < end_s]
        return raw_news_frame(kept)

    def _get(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int] | None:
        try:
            return collect(
                lambda validate: self.http.get_json(EVERYTHING_PATH, params, validate=validate, headers=self._headers),
                self._parse,
            )
        except HttpStatusError as exc:
            body = exc.json_body()
            code = body.get("code") if isinstance(body, dict) else None
            if code == "maximumResultsReached" and params["page"] > 1:
                log.info("newsapi: plan's result limit reached at page %s; keeping what was fetched", params["page"])
                return None
            raise

    def _parse(self, body: Any) -> tuple[list[dict[str, Any]], int]:
        if not isinstance(body, dict):
            raise bad_body(self.name, f"expected a JSON object, got {type(body).__name__}: {excerpt(body)}")
        if body.get("status") != "ok":
            raise ProviderError(
                self.name, "", f"error response {body.get('code')}: {body.get('message')}", retryable=False
            )
        articles = body.get("articles")
        if not isinstance(articles, list):
            raise bad_body(self.name, f"no articles list in the answer: {excerpt(body)}")
        total = body.get("totalResults")
        total = total if isinstance(total, int) and not isinstance(total, bool) else len(articles)
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(articles):
            if not isinstance(item, dict):
                raise bad_body(self.name, f"unexpected article shape at index {index}: {excerpt(item)}")
            title = text_field(item.get("title"))
            published = _parse_time(item.get("publishedAt"))
            url = text_field(item.get("url"))
            if not title or title == "[Removed]" or published is None:
                log.info("newsapi: skipping article %d without title or publishedAt: %s", index, excerpt(item, 80))
                continue
            source = item.get("source")
            rows.append(
                {
                    "published_at": published,
                    "source": text_field(source.get("name")) if isinstance(source, dict) else text_field(source),
                    "title": title,
                    "body": text_field(item.get("description")),
                    "url": url,
                    "provider": self.name,
                    "categories": "",
                    "external_id": url or f"{published}:{title}",
                }
            )
        return rows, total
