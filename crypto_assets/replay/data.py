"""The bundled offline data (real recorded prices and news, see data/replay/README.md), loaded once.

Everything that needs the bundled files goes through ``REPLAY_DIR`` so packaging can move them in one place.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path

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
