"""CryptoCompare (CoinDesk Data): hourly history and news. Key-only since 2026-05-21.

- ``GET /data/v2/histohour?fsym=BTC&tsym=USD&limit=2000&toTs=s``: ``limit + 1`` rows ending at ``toTs``
  (inclusive), paged backwards. Hours before a coin has data are all-zero rows; they are dropped.
- ``GET /data/v2/news/?lang=EN&lTs=s``: newest first, paged back with ``lTs``.

Errors come as HTTP 200 with ``"Response": "Error"``; without a key the API answers HTTP 401
``{"Err":{"message":"API key required, ..."}}``. The key goes in the ``authorization: Apikey <key>`` header,
never in the URL. Without ``CRYPTOCOMPARE_API_KEY`` the provider is skipped and never called.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.providers.news import (
    FAILED,
    BaseNewsClient,
    CoverageWindow,
    answered_from,
    raw_news_frame,
    text_field,
)
from crypto_assets.providers.prices import (
    HOUR,
    Bar,
    BasePriceClient,
    bad_body,
    epoch_seconds,
    excerpt,
    expect_object,
    parse_number,
    parse_time,
    whole_seconds,
)
from crypto_assets.providers.registry import NEWS, PRICES, BaseClient, ProviderSpec, RateLimit, SymbolMap
from crypto_assets.replay.wire import ReplayRequest, ReplayRoutes, Response, json_response, last_closed_open

log = logging.getLogger("crypto_assets.providers.news")

HISTOHOUR_PATH = "/data/v2/histohour"
NEWS_PATH = "/data/v2/news/"
MAX_LIMIT, DEFAULT_LIMIT = 2000, 168
NEWS_PAGE_SIZE = 50
MAX_NEWS_PAGES = 500
KEY_ENV = "CRYPTOCOMPARE_API_KEY"
KEY_REQUIRED_MESSAGE = "API key required, please refer to the documentation at https://developers.coindesk.com/"


def check_envelope(provider: str, body: Any) -> None:
    """Raise for ``"Response": "Error"`` bodies: unknown pairs are UnknownSymbolError, rate limits retryable."""
    if expect_object(provider, body).get("Response") != "Error":
        return
    message = str(body.get("Message") or "no message")
    lowered = message.lower()
    if "does not exist" in lowered and ("market" in lowered or "pair" in lowered or "coin" in lowered):
        raise UnknownSymbolError(provider, "", f"unknown symbol: {message}")
    retryable = "rate limit" in lowered
    raise ProviderError(provider, "", f"error response: {message}", retryable=retryable)


class _ApiKeyHeader(BaseClient):
    """The key of both CryptoCompare clients: ``authorization: Apikey <key>``."""

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Apikey {self.api_key}"} if self.api_key else {}


class CryptoCompareClient(_ApiKeyHeader, BasePriceClient):
    name = "cryptocompare"
    symbols = SymbolMap("{sym}")
    limit = MAX_LIMIT

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        bars: list[Bar] = []
        to_ts = stop_s - HOUR  # last bar wanted, inclusive
        while to_ts >= start_s:
            limit = max(1, min(self.limit, (to_ts - start_s) // HOUR))
            params = {"fsym": symbol, "tsym": "USD", "limit": limit, "toTs": to_ts}
            page: list[Bar] = self._get_parsed(HISTOHOUR_PATH, params, self._parse)
            real = [bar for bar in page if bar[0] <= to_ts and any(bar[1:5])]
            bars.extend(real)
            earliest = min(page, default=None)
            if not real or earliest is None or earliest[0] > to_ts or not any(earliest[1:5]):
                break  # nothing (more) before this point: empty page or the coin's pre-listing zeros
            to_ts = earliest[0] - HOUR
        return bars

    def _parse(self, body: Any) -> list[Bar]:
        check_envelope(self.name, body)
        data = body.get("Data")
        rows = data.get("Data") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise bad_body(self.name, f"no Data list in the answer: {excerpt(body)}")
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, dict) or not {"time", "open", "high", "low", "close", "volumefrom"} <= row.keys():
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row["time"], index=index, row=row)
            o, h, lo, c, v = (
                parse_number(self.name, row[f], field_name=f, index=index, row=row)
                for f in ("open", "high", "low", "close", "volumefrom")
            )
            bars.append((t, o, h, lo, c, v))
        return bars


class CryptoCompareNewsClient(_ApiKeyHeader, BaseNewsClient):
    name = "cryptocompare"

    def _fetch(
        self, start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> tuple[pd.DataFrame, list[CoverageWindow]]:
        """Articles published in [start, end), paging back from ``end`` until a page goes before ``start``.

        A failure part-way keeps what was reached: ``[oldest reached, end)`` is covered, the rest failed.
        """
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        seen: dict[str, dict[str, Any]] = {}
        lts = end_s
        error: ProviderError | None = None
        for _ in range(MAX_NEWS_PAGES):
            try:
                items = self._page(lts)
            except ProviderError as exc:
                error = exc
                break
            new = [item for item in items if item["external_id"] not in seen]
            if not new:
                lts = start_s  # nothing older: the whole window is answered
                break
            for item in new:
                seen[item["external_id"]] = item
            oldest = min(item["published_at"] for item in items)
            if oldest < start_s or oldest >= lts:
                lts = start_s
                break
            lts = oldest
        else:
            log.warning("cryptocompare news: stopped after %d pages before reaching %s", MAX_NEWS_PAGES, start)
        rows = [row for row in seen.values() if start_s <= row["published_at"] < end_s]
        reached_s = max(lts, start_s)
        reached = dt.datetime.fromtimestamp(reached_s, dt.UTC)
        answered = sum(1 for row in rows if row["published_at"] >= reached_s)
        why = f"stopped at {reached:%Y-%m-%d %H:%M}: {error.cause}" if error else "page limit reached"
        return raw_news_frame(rows), answered_from(start, end, reached, answered, before=FAILED, why=why)

    def _page(self, lts: int) -> list[dict[str, Any]]:
        return self._get_parsed(NEWS_PATH, {"lang": "EN", "lTs": lts}, self._parse)

    def probe(self, now: dt.datetime) -> str:
        return f"{len(self._page(epoch_seconds(now)))} articles on the newest page"

    def _parse(self, body: Any) -> list[dict[str, Any]]:
        check_envelope(self.name, body)
        data = body.get("Data")
        if not isinstance(data, list):
            raise bad_body(self.name, f"no Data list in the answer: {excerpt(body)}")
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise bad_body(self.name, f"unexpected item shape at index {index}: {excerpt(item)}")
            published = whole_seconds(item.get("published_on"))
            if published is None:
                raise bad_body(
                    self.name,
                    f"published_on {item.get('published_on')!r} is not an epoch time at index {index}: {excerpt(item)}",
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


class CryptoCompareReplay(ReplayRoutes):
    """``/data/v2/histohour`` and ``/data/v2/news/`` with CryptoCompare's error envelopes (HTTP 200)."""

    def route(self, request: ReplayRequest) -> Response:
        if request.path == HISTOHOUR_PATH:
            return self.histohour(request)
        if request.path.rstrip("/") == NEWS_PATH.rstrip("/"):
            return self.news(request)
        return self.not_found()

    @staticmethod
    def error(message: str, param: str | None = None) -> Response:
        payload: dict[str, Any] = {
            "Response": "Error",
            "Message": message,
            "HasWarning": False,
            "Type": 2,
            "RateLimit": {},
            "Data": {},
        }
        if param:
            payload["ParamWithError"] = param
        return json_response(payload)

    def histohour(self, request: ReplayRequest) -> Response:
        fsym, tsym = request.one("fsym"), request.one("tsym")
        for name, value in (("fsym", fsym), ("tsym", tsym)):
            if not value:
                return self.error(f"{name} is a required param.", name)
        assert fsym is not None and tsym is not None
        if fsym.upper() not in request.data.series or tsym.upper() != "USD":
            return self.error(
                f"cccagg_or_exchange market does not exist for this coin pair ({fsym.upper()}-{tsym.upper()})"
            )
        limit = request.integer("limit", lambda: self.error("limit param is not an integer.", "limit"))
        to_ts = request.integer("toTs", lambda: self.error("toTs param is not an integer.", "toTs"))
        limit = DEFAULT_LIMIT if limit is None else max(1, min(limit, MAX_LIMIT))
        newest = last_closed_open(request.clock_s)
        time_to = newest if to_ts is None else min(to_ts - to_ts % HOUR, newest)
        time_from = time_to - limit * HOUR
        request.check_down_days(time_from, time_to)
        bars = request.series(fsym.upper()).bars(time_from, time_to)

        def fmt(bar: list[Any]) -> dict[str, Any]:
            t, o, h, low, c, v = bar
            return {"time": t, "high": h, "low": low, "open": o, "volumefrom": v, "volumeto": round(v * c, 8),
                    "close": c, "conversionType": "direct", "conversionSymbol": ""}  # fmt: skip

        rows = request.order(fsym.upper(), request.price_rows(fsym.upper(), bars, fmt, "close"))
        return json_response(
            {
                "Response": "Success",
                "Message": "",
                "HasWarning": False,
                "Type": 100,
                "RateLimit": {},
                "Data": {"Aggregated": False, "TimeFrom": time_from, "TimeTo": time_to, "Data": rows},
            }
        )

    def news(self, request: ReplayRequest) -> Response:
        lang = (request.one("lang") or "EN").upper()
        lts = request.integer("lTs", lambda: self.error("lTs param is not an integer.", "lTs"))
        lts = request.clock_s if lts is None or lts <= 0 else min(lts, request.clock_s)
        news = request.data.news
        start = news.newest_at_or_before(lts)
        items = [news_item(item) for item in news.items[start : start + NEWS_PAGE_SIZE]] if lang == "EN" else []
        return json_response(
            {
                "Type": 100,
                "Message": "News list successfully returned",
                "Promoted": [],
                "Data": items,
                "RateLimit": {},
                "HasWarning": False,
            }
        )

    def not_found(self) -> Response:
        return json_response({"Response": "Error", "Message": "Path does not exist", "Type": 0, "Data": {}})

    def rate_limited(self) -> Response:
        body = {
            "Response": "Error",
            "Message": "You are over your rate limit please upgrade your account!",
            "HasWarning": False,
            "Type": 99,
            "RateLimit": {},
            "Data": {},
        }
        return json_response(body, 429, **{"Retry-After": "1"})

    def server_error(self, status: int) -> Response:
        return json_response({"Response": "Error", "Message": "Internal server error", "Type": 0, "Data": {}}, status)

    def unauthorized(self) -> Response:
        return json_response({"Err": {"message": KEY_REQUIRED_MESSAGE}}, 401)

    def has_key(self, request: ReplayRequest) -> bool:
        return request.headers.get("authorization", "").startswith("Apikey ")


def news_item(item: dict[str, Any]) -> dict[str, Any]:
    """A bundled news item in CryptoCompare's ``Data[]`` shape (no tags or categories: the data has none)."""
    return {
        "id": item["id"],
        "guid": item["guid"],
        "published_on": item["published_on"],
        "imageurl": "",
        "title": item["title"],
        "url": item["url"],
        "body": item["body"],
        "tags": "",
        "lang": "EN",
        "categories": "",
        "source": item["source"],
        "source_info": {"name": item["source"], "lang": "EN", "img": ""},
    }


PROVIDER = ProviderSpec(
    name="cryptocompare",
    kinds=(PRICES, NEWS),
    title="CryptoCompare (CoinDesk Data)",
    public_url="https://min-api.cryptocompare.com",
    docs=(
        "https://developers.coindesk.com/documentation/legacy/Historical/dataHistohour",
        "https://developers.coindesk.com/documentation/legacy/News/latestNewsArticlesEndpoint",
    ),
    rate_limit=RateLimit(15.0, 1.0, "depends on the paid plan (the free tier ended 2026-05-21)"),
    history="prices since each coin's listing; news back to 2013",
    access=(
        "key only since 2026-05-21 (HTTP 401 'API key required' without one); with CRYPTOCOMPARE_API_KEY it adds "
        "an aggregated USD price and the deepest news history with article bodies"
    ),
    price_client=CryptoCompareClient,
    news_client=CryptoCompareNewsClient,
    replay=CryptoCompareReplay(),
    key_env=KEY_ENV,
    key_required=True,
)
