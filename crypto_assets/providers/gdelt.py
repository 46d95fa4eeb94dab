"""GDELT DOC 2.0 article search: ``GET /api/v2/doc/doc?query=...&mode=artlist&format=json&maxrecords=250&sort=dateasc
&startdatetime=YYYYMMDDHHMMSS&enddatetime=YYYYMMDDHHMMSS``. Keyless, titles only.

Answers ``{"articles":[{"url","url_mobile","title","seendate":"20221015T103000Z","socialimage","domain","language",
"sourcecountry"}]}``; a search without a match answers ``{}``. ``seendate`` (when GDELT first saw the article) is
``published_at``, ``domain`` the source; there is no body.

What the client does about GDELT's limits:
- At most 250 articles per answer: a window whose answer is full is split in halves (on 15-minute boundaries,
  GDELT's update interval) and asked again, down to 15 minutes; a 15-minute window still full is recorded ``ok``
  with a detail saying articles may be missing.
- GDELT searches a rolling window of the last 3 months and answers ``{}`` for anything older, which is not "no
  news": the part of an asked window older than ``CRYPTO_ASSETS_GDELT_HISTORY_DAYS`` (default 90) days before now
  is recorded ``skipped`` and never asked.
- One request per 5 s (the 429 body says "Please limit requests to one every 5 seconds"), and a long back-off
  with more attempts on 429: GDELT sheds load even from polite clients. The same notice sometimes arrives as
  HTTP 200 plain text; it is retried like a 429.
- A rejected query answers HTTP 200 with a plain-text sentence ("Queries containing OR'd terms must be surrounded
  by ().", ...): a bad answer, not retried.
- Whatever is still unanswered after the retries is a ``failed`` coverage window, one per sub-window, so one bad
  sub-window never loses the others; nothing escapes ``fetch``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from bisect import bisect_left
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from crypto_assets.config import number
from crypto_assets.errors import ProviderError
from crypto_assets.http import HttpClient, collect
from crypto_assets.providers.news import (
    FAILED,
    OK,
    SKIPPED,
    BaseNewsClient,
    CoverageWindow,
    raw_news_frame,
    text_field,
    window,
)
from crypto_assets.providers.prices import bad_body, epoch_seconds, excerpt, expect_object
from crypto_assets.providers.registry import NEWS, Option, ProviderSpec, RateLimit
from crypto_assets.replay.wire import ReplayRequest, ReplayRoutes, Response, json_response, text_response

log = logging.getLogger("crypto_assets.providers.news")

DOC_PATH = "/api/v2/doc/doc"
# GDELT's query rules: OR'd terms must be inside parentheses, keywords must not be too short.
QUERY = "(bitcoin OR ethereum OR crypto OR cryptocurrency OR blockchain) sourcelang:english"
MAX_RECORDS = 250
DEFAULT_RECORDS = 75  # GDELT's default maxrecords for artlist
SLOT = 15 * 60  # GDELT updates every 15 minutes: seendates fall on these slots
TIME_FORMAT = "%Y%m%d%H%M%S"
SEENDATE_FORMAT = "%Y%m%dT%H%M%SZ"
HISTORY_ENV = "CRYPTO_ASSETS_GDELT_HISTORY_DAYS"
DEFAULT_HISTORY_DAYS = 90
REPLAY_HISTORY_DAYS = 36500  # the bundled news is from 2022: a replay must not have it skipped
REPLAY_HORIZON_DAYS = 92  # the replay's own rolling window, counted from its clock
THROTTLE_MESSAGE = "Please limit requests to one every 5 seconds."
THROTTLE_MARKER = "limit requests to one every"
OR_MESSAGE = "Queries containing OR'd terms must be surrounded by ()."
PARENS_MESSAGE = "One or more of your parenthetical clauses had an error in it."
SHORT_MESSAGE = "Your query was too short or too long."


def parse_history_days(variable: str, raw: str) -> int:
    """Days back from now that GDELT's DOC API answers for."""
    return int(number(variable, raw, whole=True, minimum=1, maximum=36_500, meaning="days"))


def gdelt_time(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(TIME_FORMAT)


def parse_gdelt_time(value: str) -> int:
    """``YYYYMMDDHHMMSS`` (UTC) -> epoch seconds; ValueError otherwise."""
    if not re.fullmatch(r"\d{14}", value.strip()):
        raise ValueError(f"{value!r} is not YYYYMMDDHHMMSS")
    return int(dt.datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=dt.UTC).timestamp())


def seendate(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(SEENDATE_FORMAT)


def parse_seendate(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(dt.datetime.strptime(value.strip(), SEENDATE_FORMAT).replace(tzinfo=dt.UTC).timestamp())
    except ValueError:
        return None


def domain_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


# ------------------------------------------------------------------------------------------------ HTTP


LIVE_RETRIES: dict[str, Any] = {
    "max_attempts": 6,
    "backoff_base": 10.0,  # waits 5-10, 10-20, 20-40, 40-80, 60-120 s (plus the 5 s spacing)
    "backoff_max": 120.0,
    "backoff_floor": 5.0,
    "timeout": (10, 60),
}
REPLAY_RETRIES: dict[str, Any] = {"max_attempts": 3, "backoff_base": 0.05, "backoff_max": 0.2}  # tests stay fast


def make_http(base_url: str, rate_limited: bool, **overrides: Any) -> HttpClient:
    """The client's HTTP session; ``overrides`` (tests: sleep, clock, rng) win over the client's settings."""
    return HttpClient("gdelt", base_url, **{**GdeltClient._http_options(rate_limited), **overrides})


# ------------------------------------------------------------------------------------------------ client


class GdeltClient(BaseNewsClient):
    name = "gdelt"
    query = QUERY
    max_records = MAX_RECORDS
    indexing_lag = dt.timedelta(minutes=15)  # GDELT's update cycle: the last quarter hour is not final yet

    @property
    def history_days(self) -> int:
        """How far back GDELT answers (the ``history_days`` option, parsed by ``parse_history_days``)."""
        return int(self.options.get("history_days", DEFAULT_HISTORY_DAYS))

    @classmethod
    def _http_options(cls, rate_limited: bool) -> dict[str, Any]:
        """One request per 5 s and a long back-off live; a short back-off against our own replay server."""
        return {**super()._http_options(rate_limited), **(LIVE_RETRIES if rate_limited else REPLAY_RETRIES)}

    # -- fetch

    def _fetch(
        self, start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> tuple[pd.DataFrame, list[CoverageWindow]]:
        start_s, end_s = epoch_seconds(start), epoch_seconds(end)
        horizon_s = epoch_seconds(now) - self.history_days * 86400
        coverage: list[CoverageWindow] = []
        asked_s = start_s
        if start_s < horizon_s:
            asked_s = min(end_s, horizon_s)
            coverage.append(
                window(
                    start,
                    as_datetime(asked_s) if asked_s < end_s else end,
                    SKIPPED,
                    detail=(
                        f"older than GDELT's rolling search window ({self.history_days} days before "
                        f"{as_datetime(epoch_seconds(now)):%Y-%m-%d %H:%M} UTC, {HISTORY_ENV}): not asked, "
                        "GDELT answers {} there"
                    ),
                )
            )
        rows: dict[str, dict[str, Any]] = {}
        if asked_s < end_s:
            leaves = self._search(asked_s, end_s, rows)
            coverage.extend(self._coverage(leaves, rows, first=start if not coverage else None, last=end))
        kept = [row for row in rows.values() if start_s <= row["published_at"] < end_s]
        return raw_news_frame(kept), coverage

    def _search(self, start_s: int, end_s: int, rows: dict[str, dict[str, Any]]) -> list[tuple[int, int, str, str]]:
        """Ask ``[start_s, end_s)``, halving full answers; returns leaf windows (lo, hi, status, detail) in order."""
        leaves: list[tuple[int, int, str, str]] = []
        pending = [(start_s, end_s)]
        while pending:
            lo, hi = pending.pop()
            try:
                articles = self._artlist(lo, hi, self.max_records)
            except ProviderError as exc:
                log.warning("gdelt: %s .. %s not covered: %s", as_datetime(lo), as_datetime(hi), exc)
                leaves.append((lo, hi, FAILED, exc.cause))
                continue
            for article in articles:
                rows.setdefault(article["external_id"], article)
            if len(articles) < self.max_records:
                leaves.append((lo, hi, OK, ""))
                continue
            middle = split_point(lo, hi)
            if middle is None:
                leaves.append(
                    (lo, hi, OK, f"{len(articles)} articles in {(hi - lo) // 60} minutes from "
                     f"{as_datetime(lo):%Y-%m-%d %H:%M}: GDELT's per-answer cap, some may be missing")
                )  # fmt: skip
                continue
            pending.append((middle, hi))
            pending.append((lo, middle))
        return leaves

    def _coverage(
        self,
        leaves: list[tuple[int, int, str, str]],
        rows: dict[str, dict[str, Any]],
        *,
        first: dt.datetime | None,
        last: dt.datetime,
    ) -> list[CoverageWindow]:
        """Leaf windows as coverage, adjacent ones with the same status and no detail merged."""
        times = sorted(row["published_at"] for row in rows.values())
        merged: list[list[Any]] = []  # [lo, hi, status, detail]
        for lo, hi, status, detail in leaves:
            previous = merged[-1] if merged else None
            adjacent = previous is not None and previous[1] == lo and previous[2] == status
            if adjacent and status == OK and not detail and not previous[3]:
                previous[1] = hi  # plain answered windows: one row
            elif adjacent and status == FAILED:
                previous[1] = hi  # failed ones: one row naming each distinct cause
                if detail not in previous[3].split("; "):
                    previous[3] = f"{previous[3]}; {detail}"
            else:
                merged.append([lo, hi, status, detail])
        windows = []
        for index, (lo, hi, status, detail) in enumerate(merged):
            count = bisect_left(times, hi) - bisect_left(times, lo) if status == OK else 0
            lo_dt = first if index == 0 and first is not None else as_datetime(lo)
            hi_dt = last if index == len(merged) - 1 else as_datetime(hi)
            windows.append(window(lo_dt, hi_dt, status, count, detail))
        return windows

    # -- one request

    def _artlist(self, lo: int, hi: int, max_records: int) -> list[dict[str, Any]]:
        params = {
            "query": self.query,
            "mode": "artlist",
            "format": "json",
            "maxrecords": max_records,
            "sort": "dateasc",
            "startdatetime": gdelt_time(lo),
            "enddatetime": gdelt_time(hi - 1),  # inclusive in GDELT; our windows are half-open
        }
        return collect(lambda validate: self.http.get_text(DOC_PATH, params, validate=validate), self._parse)

    def probe(self, now: dt.datetime) -> str:
        end_s = epoch_seconds(now)
        articles = self._artlist(end_s - 3600, end_s, 1)
        return f"{len(articles)} article{'s' if len(articles) != 1 else ''} in the last hour (asked for 1)"

    def _parse(self, text: str) -> list[dict[str, Any]]:
        """Articles of one answer; raises ProviderError (retryable for throttling and broken bodies)."""
        stripped = text.strip()
        if not stripped:
            raise bad_body(self.name, "empty body where JSON was expected", retryable=True)
        if stripped.startswith("{"):
            try:
                body = json.loads(stripped, strict=False)  # GDELT titles may carry raw control characters
            except ValueError:
                raise bad_body(
                    self.name, f"truncated or malformed JSON body (first 80 chars: {stripped[:80]})", retryable=True
                ) from None
            return self._articles(body)
        if stripped.startswith("<"):
            raise bad_body(self.name, f"markup where JSON was expected (first 80 chars: {stripped[:80]})", True)
        if THROTTLE_MARKER in stripped.lower():
            raise ProviderError(self.name, "", f"rate limited (HTTP 200): {stripped[:120]}", retryable=True)
        raise ProviderError(self.name, "", f"GDELT rejected the query: {stripped[:200]}", retryable=False)

    def _articles(self, body: Any) -> list[dict[str, Any]]:
        items = expect_object(self.name, body).get("articles", [])  # {} means no article matched
        if not isinstance(items, list):
            raise bad_body(self.name, f"articles is not a list: {excerpt(items)}")
        rows: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise bad_body(self.name, f"unexpected article shape at index {index}: {excerpt(item)}")
            published = parse_seendate(item.get("seendate"))
            if published is None:
                raise bad_body(
                    self.name,
                    f"seendate {item.get('seendate')!r} is not YYYYMMDDTHHMMSSZ at index {index}: {excerpt(item)}",
                )
            url, title = text_field(item.get("url")), text_field(item.get("title"))
            if not url or not title:
                log.info(
                    "gdelt: skipping article %d without %s: %s", index, "url" if not url else "title", excerpt(item)
                )
                continue
            rows.append(
                {
                    "published_at": published,
                    "source": text_field(item.get("domain")) or domain_of(url),
                    "title": title,
                    "body": "",
                    "url": url,
                    "provider": self.name,
                    "categories": "",
                    "external_id": url,
                }
            )
        return rows


def as_datetime(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def split_point(lo: int, hi: int) -> int | None:
    """Where to halve ``[lo, hi)``: the middle, moved down to a 15-minute boundary when one lies inside; None when
    the window is no longer than 15 minutes."""
    if hi - lo <= SLOT:
        return None
    middle = lo + (hi - lo) // 2
    aligned = middle - middle % SLOT
    return aligned if lo < aligned < hi else middle


# ------------------------------------------------------------------------------------------------ replay


def query_error(query: str) -> str | None:
    """GDELT's plain-text rejection for the query rules the replay checks (None when the query passes)."""
    text = re.sub(r'"[^"]*"', '""', query)  # phrases are opaque
    if len(text.strip()) < 2:
        return SHORT_MESSAGE
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return PARENS_MESSAGE
        elif depth == 0 and text.startswith(" OR ", index):
            return OR_MESSAGE
    return PARENS_MESSAGE if depth else None


class GdeltReplay(ReplayRoutes):
    """``/api/v2/doc/doc`` artlist JSON over the bundled news items that have a URL (GDELT indexes URLs; Reuters
    rows have none). Every bundled item is crypto news, so each counts as matching the query. Dates ascending or
    descending, at most ``maxrecords`` (<= 250), ``{}`` when nothing matches, nothing older than 92 days before the
    replay clock (GDELT's rolling 3 months), and GDELT's plain-text HTTP 200 answers for a bad request."""

    def route(self, request: ReplayRequest) -> Response:
        if request.path.rstrip("/") != DOC_PATH:
            return self.not_found()
        query = request.one("query") or ""
        error = query_error(query)
        if error:
            return text_response(error)
        mode = (request.one("mode") or "artlist").lower()
        fmt = (request.one("format") or "html").lower()
        if mode != "artlist" or fmt != "json":  # the real API has more modes and formats; only these are replayed
            return text_response("The replay serves mode=artlist&format=json only.")
        try:
            records = int(request.one("maxrecords") or DEFAULT_RECORDS)
        except ValueError:
            return text_response("Invalid MAXRECORDS value.")
        records = max(1, min(records, MAX_RECORDS))
        clock = request.clock_s
        horizon = clock - REPLAY_HORIZON_DAYS * 86400
        try:
            start_raw, end_raw = request.one("startdatetime"), request.one("enddatetime")
            start = parse_gdelt_time(start_raw) if start_raw else horizon
            end = parse_gdelt_time(end_raw) if end_raw else clock
        except ValueError:
            return text_response("Invalid STARTDATETIME or ENDDATETIME: use YYYYMMDDHHMMSS.")
        start, end = max(start, horizon), min(end, clock)
        found = [item for item in request.data.news.between(start, end + 1) if item["url"]] if start <= end else []
        if (request.one("sort") or "").lower() == "datedesc":
            found.reverse()
        shown = found[:records]
        if not shown:
            return json_response({})
        return json_response({"articles": [article(item) for item in shown]})

    def rate_limited(self) -> Response:
        return text_response(THROTTLE_MESSAGE, 429)

    def env(self, spec: ProviderSpec, base_url: str) -> dict[str, str]:
        # The bundled news is from 2022: counted from today, GDELT's horizon would skip all of it.
        return {**super().env(spec, base_url), HISTORY_ENV: str(REPLAY_HISTORY_DAYS)}


def article(item: dict[str, Any]) -> dict[str, Any]:
    """A bundled news item in GDELT's artlist shape (no mobile URL, image or source country in the data)."""
    return {
        "url": item["url"],
        "url_mobile": "",
        "title": item["title"],
        "seendate": seendate(item["published_on"]),
        "socialimage": "",
        "domain": domain_of(item["url"]),
        "language": "English",
        "sourcecountry": "",
    }


PROVIDER = ProviderSpec(
    name="gdelt",
    kinds=(NEWS,),
    title="GDELT DOC 2.0",
    public_url="https://api.gdeltproject.org",
    docs=("https://blog.gdeltproject.org/gdelt-doc-2-0-api-debuts/",),
    rate_limit=RateLimit(0.2, 1.0, "one request every 5 seconds (GDELT's 429 answer); sheds load anyway"),
    history="a rolling window of the last 3 months (CRYPTO_ASSETS_GDELT_HISTORY_DAYS, default 90)",
    access="keyless; titles only, no article body; sheds load with HTTP 429 even to polite clients",
    news_client=GdeltClient,
    replay=GdeltReplay(),
    default_rank=1,
    options=(Option("history_days", HISTORY_ENV, DEFAULT_HISTORY_DAYS, parse_history_days),),
)

__all__ = ["PROVIDER", "GdeltClient", "GdeltReplay", "make_http"]
