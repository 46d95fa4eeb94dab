"""The bundled offline data (real recorded prices and news, see data/replay/README.md), loaded once.

Everything that needs the bundled files goes through ``REPLAY_DIR`` so packaging can move them in one place.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crypto_assets.config import SHARE_DIR

REPLAY_DIR: Path = SHARE_DIR / "data" / "replay"

BUNDLED_SYMBOLS: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP", "BNB", "ADA")
# First bar open and the end of the last bar (2022-08-01 23:00 + 1 h) of the bundled prices.
WINDOW_START = datetime(2022, 5, 4, tzinfo=UTC)
WINDOW_END = datetime(2022, 8, 2, tzinfo=UTC)

PRICE_COLUMNS: tuple[str, ...] = ("symbol", "ts", "open", "high", "low", "close", "volume")
NEWS_COLUMNS: tuple[str, ...] = ("published_at", "source", "title", "body", "url", "dataset")


def price_file(symbol: str) -> Path:
    return REPLAY_DIR / "prices" / f"{symbol}_USDT-1h.json.gz"


def news_file() -> Path:
    return REPLAY_DIR / "news" / "news.csv.gz"


@cache
def _price_rows(symbol: str) -> tuple[tuple[int, float, float, float, float, float], ...]:
    """freqtrade rows ``[open_ms, open, high, low, close, base_volume]`` exactly as stored."""
    with gzip.open(price_file(symbol), "rt", encoding="utf-8") as fh:
        rows = json.load(fh)
    return tuple((int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])) for r in rows)


@lru_cache(maxsize=1)
def _prices() -> pd.DataFrame:
    frames = []
    for symbol in BUNDLED_SYMBOLS:
        rows = _price_rows(symbol)
        frame = pd.DataFrame(rows, columns=["open_ms", "open", "high", "low", "close", "volume"])
        frame.insert(0, "symbol", symbol)
        frame.insert(1, "ts", pd.to_datetime(frame.pop("open_ms"), unit="ms", utc=True).astype("datetime64[ns, UTC]"))
        frames.append(frame)
    prices = pd.concat(frames, ignore_index=True)
    for column in ("open", "high", "low", "close", "volume"):
        prices[column] = prices[column].astype("float64")
    return prices.sort_values(["symbol", "ts"], ignore_index=True)


def load_bundled_prices() -> pd.DataFrame:
    """Hourly Binance spot bars of the bundled symbols: symbol, ts (bar open, UTC), open, high, low, close, volume."""
    return _prices().copy()


@lru_cache(maxsize=1)
def _news() -> pd.DataFrame:
    news = pd.read_csv(news_file(), compression="gzip", dtype=str, keep_default_na=False, encoding="utf-8")
    # Reuters rows carry milliseconds, the others whole seconds: format="ISO8601" reads both.
    news["published_at"] = pd.to_datetime(news["published_at"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    return news.loc[:, list(NEWS_COLUMNS)].sort_values("published_at", kind="stable", ignore_index=True)


def load_bundled_news() -> pd.DataFrame:
    """The 3,907 bundled news items: published_at (UTC), source, title, body, url ("" when absent), dataset."""
    return _news().copy()


# ------------------------------------------------------------------------------ indexed for the replay server


@dataclass
class Series:
    """One symbol's bars for fast range lookups: open times (epoch seconds, ascending) and OHLCV values."""

    opens: np.ndarray
    values: np.ndarray  # (n, 5): open, high, low, close, volume

    def bars(self, lo: int, hi: int, *, first: int | None = None, last: int | None = None) -> list[list[Any]]:
        """Bars ``[open_s, open, high, low, close, volume]`` with open time in [lo, hi]; only the first or last
        ``n`` of them when asked."""
        i, j = int(np.searchsorted(self.opens, lo, "left")), int(np.searchsorted(self.opens, hi, "right"))
        if first is not None:
            j = min(j, i + first)
        if last is not None:
            i = max(i, j - last)
        return [[int(t), *vals] for t, vals in zip(self.opens[i:j].tolist(), self.values[i:j].tolist(), strict=True)]

    def last_open_at_or_before(self, t: int) -> int | None:
        i = int(np.searchsorted(self.opens, t, "right"))
        return int(self.opens[i - 1]) if i else None


@dataclass
class NewsIndex:
    """The bundled news items, newest first, each a dict: id, guid, published_on (epoch s), title, url, body,
    source, dataset. ``memo`` holds indexes a provider derives once (e.g. RSS feed membership)."""

    items: list[dict[str, Any]]
    published: np.ndarray  # -published_on of items (ascending, for searchsorted)
    memo: dict[str, Any] = field(default_factory=dict)

    def newest_at_or_before(self, t: int) -> int:
        """Index of the first item (newest first) published at or before t."""
        return int(np.searchsorted(self.published, -t, "left"))

    def between(self, start_s: int, end_s: int) -> list[dict[str, Any]]:
        """Items published in [start_s, end_s), oldest first."""
        lo = self.newest_at_or_before(end_s - 1)
        hi = self.newest_at_or_before(start_s - 1)
        return self.items[lo:hi][::-1]

    def derived(self, key: str, build: Callable[[NewsIndex], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = build(self)
        return self.memo[key]


def article_id(url: str, title: str) -> str:
    """A stable numeric id like CryptoCompare's, from the URL (or the title when there is none)."""
    return str(int(hashlib.sha1((url or title).encode("utf-8")).hexdigest()[:12], 16))


@lru_cache(maxsize=1)
def bundled_series() -> dict[str, Series]:
    series = {}
    for symbol, frame in _prices().groupby("symbol", sort=False):
        opens = (frame["ts"].astype("int64") // 10**9).to_numpy(dtype=np.int64)
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
        series[str(symbol)] = Series(opens, values)
    return series


def with_aliases(series: Mapping[str, Series], aliases: Mapping[str, str]) -> dict[str, Series]:
    """``series`` plus each alias serving its bundled symbol's bars (benchmarks: a bigger universe)."""
    from crypto_assets.errors import ConfigError
    from crypto_assets.symbols import validate_symbol

    result = dict(series)
    for alias, target in aliases.items():
        validate_symbol(alias)
        if alias in series:
            raise ConfigError(f"alias {alias!r} would hide the bundled symbol {alias}: choose another name")
        if target not in series:
            raise ConfigError(f"alias {alias!r}: {target!r} is not a bundled symbol ({', '.join(series)})")
        result[alias] = series[target]
    return result


@lru_cache(maxsize=1)
def bundled_news_index() -> NewsIndex:
    news = _news().copy()
    news["published_on"] = news["published_at"].astype("int64") // 10**9
    news["id"] = [article_id(u, t) for u, t in zip(news["url"], news["title"], strict=True)]
    news = news.sort_values(["published_on", "id"], ascending=[False, False], ignore_index=True)
    items = [
        {
            "id": row.id,
            "guid": row.url or f"urn:crypto-assets-replay:{row.id}",
            "published_on": int(row.published_on),
            "title": row.title,
            "url": row.url,
            "body": row.body,
            "source": row.source,
            "dataset": row.dataset,
        }
        for row in news.itertuples(index=False)
    ]
    return NewsIndex(items, -news["published_on"].to_numpy(dtype=np.int64))
