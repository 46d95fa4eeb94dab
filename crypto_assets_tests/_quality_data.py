"""Real-shaped frames for the schema and quality tests, built from the real fixtures (see
fixtures/quality_samples.README.md).

The feature builder below follows features.md closely enough to give real value ranges and warm-up
nulls; it is test scaffolding, not the project's feature code (that lives in crypto_assets.transforms).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import ta

from crypto_assets.schemas import FEATURE_COLUMNS
from crypto_assets.transforms.features import PROVENANCE_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures"
UNIVERSE = ["BTC", "ETH", "SOL", "XRP", "BNB", "ADA"]
INGESTED_AT = pd.Timestamp("2022-05-14 00:05", tz="UTC")


@cache
def _prices() -> pd.DataFrame:
    raw = pd.read_csv(FIXTURES / "quality_prices_sample.csv.gz")
    frame = raw.assign(ts=pd.to_datetime(raw["open_time_ms"], unit="ms", utc=True), provider="binance")
    frame = frame[["symbol", "ts", "open", "high", "low", "close", "volume", "provider"]]
    return frame.sort_values(["symbol", "ts"]).reset_index(drop=True)


def real_prices(*, ingested: bool = False) -> pd.DataFrame:
    """The real Binance bars (6 symbols, 2022-05-04 .. 2022-05-13), in the contract's prices shape."""
    frame = _prices().copy()
    if ingested:
        frame["ingested_at"] = pd.Series(INGESTED_AT, index=frame.index).astype("datetime64[ns, UTC]")
    return frame


def article_id(url: str, source: str, title: str) -> str:
    return hashlib.sha1((url or f"{source}|{title}").encode()).hexdigest()[:16]


@cache
def _news() -> pd.DataFrame:
    raw = pd.read_csv(FIXTURES / "quality_news_sample.csv.gz", dtype=str, keep_default_na=False)
    frame = pd.DataFrame(
        {
            "article_id": [
                article_id(u, s, t) for u, s, t in zip(raw["url"], raw["source"], raw["title"], strict=True)
            ],
            "published_at": pd.to_datetime(raw["published_at"], utc=True, format="ISO8601").dt.as_unit("ns"),
            "source": raw["source"],
            "title": raw["title"],
            "body": raw["body"],
            "url": raw["url"],
            "provider": "replay",
            "categories": "",
        }
    )
    return frame.sort_values("published_at").reset_index(drop=True)


def real_news() -> pd.DataFrame:
    """The real news items of 2022-05-09 .. 2022-05-12 in the raw.news shape (ids derived from the URL)."""
    return _news().copy()


def price_coverage() -> pd.DataFrame:
    """raw.price_coverage rows of the real bars: every (symbol, UTC day) complete, served by Binance."""
    prices = real_prices()
    days = prices.assign(day=prices["ts"].dt.floor("D").dt.date).groupby(["symbol", "day"], sort=True).size()
    frame = days.rename("bars").reset_index()
    return frame.assign(
        status="complete",
        bars=frame["bars"].astype("int64"),
        provider="binance",
        detail=[f"binance: {n} bars" for n in frame["bars"]],
    )[["symbol", "day", "status", "bars", "provider", "detail"]]


def news_coverage() -> pd.DataFrame:
    """raw.news_coverage rows for the real news: one successful answer per UTC day, and a failed RSS fetch."""
    news = real_news()
    per_day = news.groupby(news["published_at"].dt.floor("D")).size()
    ok = pd.DataFrame(
        {
            "provider": "replay",
            "window_start": per_day.index,
            "window_end": per_day.index + pd.Timedelta(days=1),
            "status": "ok",
            "articles": per_day.to_numpy(dtype="int64"),
            "fetched_at": INGESTED_AT,
            "detail": [f"{n} articles" for n in per_day],
        }
    )
    failed = pd.DataFrame(
        {
            "provider": ["rss"],
            "window_start": [per_day.index[-1] + pd.Timedelta(hours=20)],
            "window_end": [INGESTED_AT],
            "status": ["failed"],
            "articles": np.array([0], dtype="int64"),
            "fetched_at": [INGESTED_AT],
            "detail": ["HTTP 503 from the feed"],
        }
    )
    frame = pd.concat([ok, failed], ignore_index=True)
    for column in ("window_start", "window_end", "fetched_at"):
        frame[column] = frame[column].astype("datetime64[ns, UTC]")
    return frame


def article_sentiment() -> pd.DataFrame:
    """One row per (real article, symbol) with a deterministic compound score in [-1, 1]."""
    news = real_news().head(60)
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "article_id": np.repeat(news["article_id"].to_numpy(), 2),
            "symbol": ["BTC", "ETH"] * len(news),
            "published_at": np.repeat(news["published_at"].to_numpy(), 2),
            "model": "vader",
            "compound": rng.uniform(-1, 1, 2 * len(news)),
        }
    ).astype({"published_at": "datetime64[ns, UTC]"})


def technical_indicators() -> pd.DataFrame:
    parts = []
    for symbol, bars in real_prices().groupby("symbol"):
        close, high, low = bars["close"], bars["high"], bars["low"]
        macd = ta.trend.MACD(close, window_slow=26, window_fast=12, window_sign=9)
        bb = ta.volatility.BollingerBands(close, window=20, window_dev=2)
        atr = ta.volatility.AverageTrueRange(high, low, close, window=14).average_true_range()
        atr.iloc[:14] = np.nan
        tp = (high + low + close) / 3
        parts.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": bars["ts"],
                    "rsi_14": ta.momentum.RSIIndicator(close, window=14).rsi(),
                    "macd": macd.macd(),
                    "macd_signal": macd.macd_signal(),
                    "macd_hist": macd.macd_diff(),
                    "bb_high": bb.bollinger_hband(),
                    "bb_mid": bb.bollinger_mavg(),
                    "bb_low": bb.bollinger_lband(),
                    "bb_pct_b": bb.bollinger_pband(),
                    "atr_14": atr,
                    "ema_12": ta.trend.EMAIndicator(close, window=12).ema_indicator(),
                    "ema_26": ta.trend.EMAIndicator(close, window=26).ema_indicator(),
                    "vwap_24": (tp * bars["volume"]).rolling(24).sum() / bars["volume"].rolling(24).sum(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def sentiment_hourly() -> pd.DataFrame:
    bars = real_prices()[["symbol", "ts"]]
    n = (bars["ts"].dt.hour % 5).astype("int64")
    mean = np.tanh(np.sin(np.arange(len(bars)) / 7.0))
    return bars.assign(
        sentiment_mean_24h=np.where(n > 0, mean, 0.0),
        news_volume_24h=np.log1p(n),
        sentiment_momentum_6h=np.where(n > 0, -mean / 2, 0.0),
        news_count_24h=n,
        news_coverage_24h=1.0,  # every hour covered by a successful news provider answer
    )


@cache
def _feature_vectors() -> pd.DataFrame:
    prices = real_prices()
    btc = prices.loc[prices["symbol"] == "BTC"].set_index("ts")["close"]
    btc_ret = np.log(btc).diff()
    sentiment = sentiment_hourly().set_index(["symbol", "ts"])
    parts = []
    for symbol, bars in prices.groupby("symbol"):
        bars = bars.set_index("ts")
        close, high, low, volume = bars["close"], bars["high"], bars["low"], bars["volume"]
        ret = np.log(close).diff()
        atr = ta.volatility.AverageTrueRange(high, low, close, window=14).average_true_range() / close
        atr.iloc[:14] = np.nan
        ema12 = ta.trend.EMAIndicator(close, window=12).ema_indicator()
        ema26 = ta.trend.EMAIndicator(close, window=26).ema_indicator()
        vol_std = volume.rolling(24).std()
        tp = (high + low + close) / 3
        vwap = (tp * volume).rolling(24).sum() / volume.rolling(24).sum()
        btc_aligned = btc_ret.reindex(close.index)
        corr = ret.rolling(24).corr(btc_aligned)
        rel = np.log(close / close.shift(24)) - np.log(btc / btc.shift(24)).reindex(close.index)
        if symbol == "BTC":
            corr, rel = corr.where(corr.isna(), 1.0), rel.where(rel.isna(), 0.0)
        hour = close.index.hour
        frame = pd.DataFrame(
            {
                "rsi_14": ta.momentum.RSIIndicator(close, window=14).rsi(),
                "macd_hist_norm": ta.trend.MACD(close, 26, 12, 9).macd_diff() / close,
                "bb_pct_b": ta.volatility.BollingerBands(close, 20, 2).bollinger_pband(),
                "atr_14_pct": atr,
                "ema_ratio_12_26": ema12 / ema26 - 1,
                "log_return_1h": ret,
                "realized_vol_24h": ret.rolling(24).std(),
                "volume_zscore_24h": ((volume - volume.rolling(24).mean()) / vol_std).where(vol_std != 0, 0.0),
                "vwap_dev_24h": close / vwap - 1,
                "btc_corr_24h": corr,
                "btc_rel_strength_24h": rel,
                "hour_sin": np.sin(2 * np.pi * hour / 24),
                "hour_cos": np.cos(2 * np.pi * hour / 24),
            },
            index=close.index,
        )
        own = sentiment.loc[symbol]
        for col in ("sentiment_mean_24h", "news_volume_24h", "sentiment_momentum_6h", "news_coverage_24h"):
            frame[col] = own[col].reindex(close.index)
        # No bar is missing, but the hours before a series' first bar count as gaps: 23, 22, ... 0.
        frame["gap_hours_24h"] = np.maximum(23 - np.arange(len(frame)), 0).astype("int64")
        technical = ["rsi_14", "macd_hist_norm", "bb_pct_b", "atr_14_pct", "ema_ratio_12_26"]
        frame.loc[frame["gap_hours_24h"].to_numpy() > 0, technical] = np.nan
        frame["venues_24h"] = np.int64(1)
        frame["close"] = close
        parts.append(frame.reset_index().assign(symbol=symbol))
    out = pd.concat(parts, ignore_index=True)
    return out[["symbol", "ts", *FEATURE_COLUMNS, *PROVENANCE_COLUMNS, "close"]]


def feature_vectors() -> pd.DataFrame:
    """The 16 features and the provenance columns per real bar (null while windows fill), as feature_vectors."""
    return _feature_vectors().drop(columns="close").copy()


def training_set(purge_bars: int = 24) -> pd.DataFrame:
    """Complete rows with labels and chronological 70/15/15 splits, purging ``purge_bars`` after each boundary."""
    frame = _feature_vectors().copy()
    nxt = frame.groupby("symbol")["close"].shift(-1)
    frame["target_log_return_1h"] = np.log(nxt / frame["close"])
    frame["target_up_1h"] = frame["target_log_return_1h"] > 0
    frame = frame.drop(columns="close").dropna(subset=[*FEATURE_COLUMNS, "target_log_return_1h"])
    times = np.sort(frame["ts"].unique())
    cut1, cut2 = int(len(times) * 0.70), int(len(times) * 0.85)
    split = pd.Series("train", index=times)
    split.iloc[cut1:cut2] = "valid"
    split.iloc[cut2:] = "test"
    keep = np.ones(len(times), dtype=bool)
    for cut in (cut1, cut2):
        keep[cut : cut + purge_bars] = False
    split = split[keep]
    frame = frame.loc[frame["ts"].isin(split.index)]
    frame["split"] = frame["ts"].map(split)
    return frame.sort_values(["symbol", "ts"]).reset_index(drop=True)


def partition_scores() -> pd.DataFrame:
    from crypto_assets.transforms.quality import partition_score_rows

    prices = real_prices()
    start = pd.Timestamp("2022-05-11", tz="UTC")
    day = prices.loc[(prices["ts"] >= start) & (prices["ts"] < start + pd.Timedelta(days=1))]
    return partition_score_rows(
        day, partition_key="2022-05-11", symbols=UNIVERSE, now=pd.Timestamp("2022-05-12 00:10", tz="UTC")
    )
