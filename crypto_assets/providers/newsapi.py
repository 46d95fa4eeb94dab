"""NewsAPI ``GET /v2/everything`` (q=crypto OR bitcoin), key in the ``X-Api-Key`` header.

Pages of 100 articles, newest first. The free plan stops at 100 results with HTTP 426
``maximumResultsReached``; that ends paging quietly with what was collected so far, and the window is
covered only from the oldest article reached. Without ``NEWSAPI_API_KEY`` the provider is skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import pandas as pd

from crypto_assets.errors import ProviderError
from crypto_assets.http import HttpStatusError
from crypto_assets.providers.news import (
    OK,
    SKIPPED,
    BaseNewsClient,
    CoverageWindow,
    answered_from,
    raw_news_frame,
    text_field,
    window,
)
from crypto_assets.providers.prices import bad_body, epoch_seconds, excerpt, expect_object, iso_z
from crypto_assets.providers.registry import NEWS, ProviderSpec, RateLimit
from crypto_assets.replay.wire import ReplayRequest, ReplayRoutes, Response, json_response, query_time

log = logging.getLogger("crypto_assets.providers.news")

EVERYTHING_PATH = "/v2/everything"
QUERY = "crypto OR bitcoin"
PAGE_SIZE = 100
MAX_PAGES = 50


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


class NewsApiClient(BaseNewsClient):
    name = "newsapi"
    page_size = PAGE_SIZE
    query = QUERY

    def _auth_headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.api_key or ""}

    def _fetch(
        self, start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> tuple[pd.DataFrame, list[CoverageWindow]]:
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        rows: dict[str, dict[str, Any]] = {}
        complete = True
        for page in range(1, MAX_PAGES + 1):
            params = {
                "q": self.query,
                "from": iso_z(start_s),
                "to": iso_z(end_s),
                "language": "en",
                "sortBy": "publishedAt",
                "pageSize": self.page_size,
                "page": page,
            }
            result = self._get(params)
            if result is None:
                complete = False
                break
            articles, total = result
            for row in articles:
                rows.setdefault(row["external_id"], row)
            if not articles or page * self.page_size >= total:
                break
        kept = [row for row in rows.values() if start_s <= row["published_at"] < end_s]
        if complete or not kept:
            return raw_news_frame(kept), [window(start, end, OK, len(kept))]
        # Newest first and cut by the plan: only from the oldest article reached is the window known.
        reached = dt.datetime.fromtimestamp(min(row["published_at"] for row in kept), dt.UTC)
        why = "the plan's result limit was reached"
        return raw_news_frame(kept), answered_from(start, end, reached, len(kept), before=SKIPPED, why=why)

    def probe(self, now: dt.datetime) -> str:
        end_s = epoch_seconds(now)
        params = {"q": self.query, "from": iso_z(end_s - 86400), "to": iso_z(end_s), "pageSize": 1, "page": 1}
        result = self._get(params)
        return f"{result[1] if result else 0} articles in the last day"

    def _get(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int] | None:
        try:
            return self._get_parsed(EVERYTHING_PATH, params, self._parse)
        except HttpStatusError as exc:
            body = exc.json_body()
            code = body.get("code") if isinstance(body, dict) else None
            if code == "maximumResultsReached" and params["page"] > 1:
                log.info("newsapi: plan's result limit reached at page %s; keeping what was fetched", params["page"])
                return None
            raise

    def _parse(self, body: Any) -> tuple[list[dict[str, Any]], int]:
        if expect_object(self.name, body).get("status") != "ok":
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


class NewsApiReplay(ReplayRoutes):
    """``/v2/everything`` over the bundled articles that have a URL, newest first, keyed."""

    def route(self, request: ReplayRequest) -> Response:
        if request.path != EVERYTHING_PATH:
            return self.error(404, "routeNotFound", "The route was not found.")
        try:
            start = query_time(request.one("from") or "1970-01-01T00:00:00Z")
            end = query_time(request.one("to") or "2100-01-01T00:00:00Z")
        except ValueError:
            return self.error(400, "parameterInvalid", "from and to must be ISO 8601 times.")
        size = request.integer("pageSize", lambda: self.error(400, "parameterInvalid", "pageSize")) or PAGE_SIZE
        page = request.integer("page", lambda: self.error(400, "parameterInvalid", "page")) or 1
        end = min(end + 1, request.clock_s + 1)  # "to" is inclusive
        found = [item for item in request.data.news.between(start, end) if item["url"]][::-1]
        shown = found[(page - 1) * size : page * size]
        articles = [
            {
                "source": {"id": None, "name": item["source"]},
                "author": None,
                "title": item["title"],
                "description": item["body"],
                "url": item["url"],
                "urlToImage": None,
                "publishedAt": iso_z(item["published_on"]),
                "content": None,
            }
            for item in shown
        ]
        return json_response({"status": "ok", "totalResults": len(found), "articles": articles})

    @staticmethod
    def error(status: int, code: str, message: str) -> Response:
        return json_response({"status": "error", "code": code, "message": message}, status)

    def rate_limited(self) -> Response:
        return self.error(429, "rateLimited", "You have made too many requests recently.")

    def unauthorized(self) -> Response:
        return self.error(
            401,
            "apiKeyMissing",
            "Your API key is missing. Append this to the URL with the apiKey param, or use the x-api-key HTTP header.",
        )

    def has_key(self, request: ReplayRequest) -> bool:
        return bool(request.headers.get("x-api-key"))


PROVIDER = ProviderSpec(
    name="newsapi",
    kinds=(NEWS,),
    title="NewsAPI",
    public_url="https://newsapi.org",
    docs=("https://newsapi.org/docs/endpoints/everything", "https://newsapi.org/docs/errors"),
    rate_limit=RateLimit(1.0, 1.0, "developer plan: 100 requests per day, 100 results per query"),
    history="developer plan: the last month, with a delay",
    access="key only (NEWSAPI_API_KEY); skipped without it",
    news_client=NewsApiClient,
    replay=NewsApiReplay(),
    key_env="NEWSAPI_API_KEY",
    key_required=True,
)
