"""CryptoCompare news (``GET /data/v2/news/?lang=EN&lTs=s``), plus the raw news frame shared by news clients.

Raw news frame columns: published_at (UTC), source, title, body, url, provider, categories
("|"-joined provider tags, may be ""), external_id. Canonicalisation (HTML stripping, utm removal,
article_id, de-duplication across providers, symbol tagging) happens in crypto_assets.transforms.news.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from crypto_assets.errors import ProviderError
from crypto_assets.http import HttpClient
from crypto_assets.providers.prices import bad_body, collect, epoch_seconds, excerpt

log = logging.getLogger("crypto_assets.providers.news")

RAW_NEWS_COLUMNS: tuple[str, ...] = (
    "published_at",
    "source",
    "title",
    "body",
    "url",
    "provider",
    "categories",
    "external_id",
)
NEWS_PATH = "/data/v2/news/"
MAX_PAGES = 500


def raw_news_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with RAW_NEWS_COLUMNS, published_at as epoch seconds) -> raw news frame sorted by time."""
    frame = pd.DataFrame(list(rows), columns=list(RAW_NEWS_COLUMNS))
    frame["published_at"] = pd.to_datetime(frame["published_at"].astype("int64"), unit="s", utc=True).astype(
        "datetime64[ns, UTC]"
    )
    for col in RAW_NEWS_COLUMNS[1:]:
        frame[col] = frame[col].fillna("").astype(str)
    return frame.sort_values(["published_at", "provider", "external_id"], kind="stable").reset_index(drop=True)


def text_field(value: Any) -> str:
    return "" if value is None else str(value).strip()


class CryptoCompareNewsClient:
    name = "cryptocompare"
    rate_per_second = 15.0

    def __init__(
        self, base_url: str, api_key: str | None = None, *, http: HttpClient | None = None, rate_limited: bool = True
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        rate = self.rate_per_second if rate_limited else None
        self.http = http or HttpClient(self.name, self.base_url, rate_per_second=rate)
        self._headers = {"authorization": f"Apikey {self.api_key}"} if self.api_key else None

    def fetch(self, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """Articles published in [start, end), paging back from ``end`` until a page goes before ``start``."""
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        seen: dict[str, dict[str, Any]] = {}
        lts = end_s
        for _ in range(MAX_PAGES):
            items: list[dict[str, Any]] = collect(
                lambda validate, lts=lts: self.http.get_json(
                    NEWS_PATH, {"lang": "EN", "lTs": lts}, validate=validate, headers=self._headers
                ),
                self._parse,
            )
            new = [item for item in items if item["external_id"] not in seen]
            if not new:
                break
            for item in new:
                seen[item["external_id"]] = item
            oldest = min(item["published_at"] for item in items)
            if oldest < start_s or oldest >= lts:
                break
            lts = oldest
        else:
            log.warning("cryptocompare news: stopped after %d pages before reaching %s", MAX_PAGES, start)
        rows = [row for row in seen.values() if start_s <= row["published_at"] < end_s]
        return raw_news_frame(rows)

    def _parse(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise bad_body(self.name, f"expected a JSON object, got {type(body).__name__}: {excerpt(body)}")
        if body.get("Response") == "Error":
            message = str(body.get("Message") or "no message")
            raise ProviderError(self.name, "", f"error response: {message}", retryable="rate limit" in message.lower())
        data = body.get("Data")
        if not isinstance(data, list):
            raise bad_body(self.name, f"no Data list in the answer: {excerpt(body)}")
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise bad_body(self.name, f"unexpected item shape at index {index}: {excerpt(item)}")
            published = item.get("published_on")
            if isinstance(published, str) and published.strip().isdigit():
                published = int(published)
            if isinstance(published, float) and math.isfinite(published):
                published = int(published)
            if not isinstance(published, int) or isinstance(published, bool):
                raise bad_body(
                    self.name, f"published_on {published!r} is not an epoch time at index {index}: {excerpt(item)}"
                )
            external_id = text_field(item.get("id")) or text_field(item.get("guid")) or text_field(item.get("url"))
            title = text_field(item.get("title"))
            if not title or not external_id:
                log.info(
                    "cryptocompare news: skipping item %s without %s", excerpt(item, 80), "title" if not title else "id"
                )
                continue
            source_info = item.get("source_info")
            source = text_field(source_info.get("name")) if isinstance(source_info, dict) else ""
            rows.append(
                {
                    "published_at": published,
                    "source": source or text_field(item.get("source")),
                    "title": title,
                    "body": text_field(item.get("body")),
                    "url": text_field(item.get("url")),
                    "provider": "cryptocompare",
                    "categories": text_field(item.get("categories")),
                    "external_id": external_id,
                }
            )
        return rows
