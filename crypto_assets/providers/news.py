"""What every news client shares: the raw news frame, coverage windows and the client base class.

A news client answers ``fetch(start, end)`` with the articles it found AND the windows it covered: a window a
provider answered for is known ("no articles" there means none), a window it could not answer is not
(``failed``), and a window it cannot answer at all is ``skipped`` (GDELT beyond its rolling 3 months, RSS
before its oldest item). Provider errors never escape ``fetch``: they become failed windows, so one news
source going down never fails a run (features.md, "news coverage").

Raw news frame columns: published_at (UTC), source, title, body, url, provider, categories ("|"-joined
provider tags, may be ""), external_id. Canonicalisation (HTML stripping, utm removal, article_id,
de-duplication across providers, symbol tagging) happens in crypto_assets.transforms.news.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from crypto_assets.errors import ProviderError
from crypto_assets.providers.prices import to_utc
from crypto_assets.providers.registry import BaseClient

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
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


def raw_news_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with RAW_NEWS_COLUMNS, published_at as epoch seconds) -> raw news frame sorted by time."""
    frame = pd.DataFrame(list(rows), columns=list(RAW_NEWS_COLUMNS))
    frame["published_at"] = pd.to_datetime(frame["published_at"].astype("int64"), unit="s", utc=True).astype(
        "datetime64[ns, UTC]"
    )
    for col in RAW_NEWS_COLUMNS[1:]:
        frame[col] = frame[col].fillna("").astype(str)
    return frame.sort_values(["published_at", "provider", "external_id"], kind="stable").reset_index(drop=True)


def empty_news_frame() -> pd.DataFrame:
    return raw_news_frame([])


def text_field(value: Any) -> str:
    return "" if value is None else str(value).strip()


@dataclass(frozen=True)
class CoverageWindow:
    """One provider answer's window ``[start, end)`` and what became of it (``ok``, ``failed``, ``skipped``)."""

    start: dt.datetime
    end: dt.datetime
    status: str
    articles: int = 0
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in (OK, FAILED, SKIPPED):
            raise ValueError(f"coverage status {self.status!r}")
        if not self.end > self.start:
            raise ValueError(f"coverage window {self.start} .. {self.end} is empty")


@dataclass
class NewsAnswer:
    """Articles (raw news frame) and the windows the provider covered, failed or skipped."""

    provider: str
    articles: pd.DataFrame
    coverage: list[CoverageWindow] = field(default_factory=list)
    fetched_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def failed(self) -> list[CoverageWindow]:
        return [window for window in self.coverage if window.status == FAILED]


def clip_to_now(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """``[start, min(end, now))``, or None when nothing of it has happened yet: no one covers the future."""
    end = min(to_utc(end), to_utc(now))
    start = to_utc(start)
    return (start, end) if end > start else None


def window(start: dt.datetime, end: dt.datetime, status: str, articles: int = 0, detail: str = "") -> CoverageWindow:
    return CoverageWindow(to_utc(start), to_utc(end), status, articles, detail)


def answered_from(
    start: dt.datetime,
    end: dt.datetime,
    reached: dt.datetime,
    articles: int,
    *,
    before: str,
    why: str,
    detail: str = "",
) -> list[CoverageWindow]:
    """Coverage of ``[start, end)`` by an answer that reaches back to ``reached`` only (newest-first pages that
    stopped, a feed's oldest item): ``[reached, end)`` is ``ok`` with ``articles`` (and ``detail``), the part
    before it ``before`` (failed or skipped) for ``why``. ``reached`` outside the window leaves one of the two."""
    reached = min(max(reached, start), end)
    coverage = []
    if reached > start:
        coverage.append(window(start, reached, before, detail=why))
    if end > reached:
        coverage.append(window(reached, end, OK, articles, detail))
    return coverage


class BaseNewsClient(BaseClient):
    """A news provider's client: subclasses implement ``_fetch`` (which may raise ProviderError) and ``probe``."""

    # How long after publication an article may still be missing from the provider's answers (indexing lag):
    # the last ``indexing_lag`` before now is neither asked nor counted as covered.
    indexing_lag: ClassVar[dt.timedelta] = dt.timedelta(0)

    def fetch(self, start: dt.datetime, end: dt.datetime, *, now: dt.datetime | None = None) -> NewsAnswer:
        """Articles published in ``[start, end)`` and the coverage of that range; never raises ProviderError."""
        now = to_utc(now) if now is not None else dt.datetime.now(dt.UTC)
        span = clip_to_now(start, end, now - self.indexing_lag)
        if span is None:
            return NewsAnswer(self.name, empty_news_frame(), [], now)
        try:
            articles, coverage = self._fetch(span[0], span[1], now)
        except ProviderError as exc:
            log.warning("%s", exc)
            return NewsAnswer(self.name, empty_news_frame(), [window(*span, FAILED, detail=exc.cause)], now)
        return NewsAnswer(self.name, articles, coverage, now)

    def _fetch(
        self, start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> tuple[pd.DataFrame, list[CoverageWindow]]:
        raise NotImplementedError

    def probe(self, now: dt.datetime) -> str:
        """One small request (raises ProviderError when it fails); returns what the answer held, in a few words."""
        raise NotImplementedError


__all__ = [
    "FAILED",
    "OK",
    "RAW_NEWS_COLUMNS",
    "SKIPPED",
    "BaseNewsClient",
    "CoverageWindow",
    "NewsAnswer",
    "answered_from",
    "clip_to_now",
    "empty_news_frame",
    "raw_news_frame",
    "text_field",
    "window",
]
