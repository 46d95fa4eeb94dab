"""raw/news, features/article_sentiment and features/sentiment_hourly: the news side of the pipeline."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import PARTITIONED, preview, row_count, table_metadata, upstream_window
from crypto_assets.defs.prices import RAW_PRICES
from crypto_assets.defs.resources import NewsSources, Universe, Warehouse
from crypto_assets.errors import ProviderError
from crypto_assets.providers.news_cryptocompare import CryptoCompareNewsClient
from crypto_assets.providers.newsapi import NewsApiClient
from crypto_assets.providers.rss import RssClient
from crypto_assets.schemas import validate_frame
from crypto_assets.transforms.news import normalize_news
from crypto_assets.transforms.sentiment import get_model, score_articles, sentiment_hourly

RAW_NEWS = dg.AssetKey(["raw", "news"])
ARTICLE_SENTIMENT = dg.AssetKey(["features", "article_sentiment"])
SENTIMENT_HOURLY = dg.AssetKey(["features", "sentiment_hourly"])

# History comes only from CryptoCompare; the others enrich recent days and may fail without failing the day.
PRIMARY_NEWS_PROVIDER = "cryptocompare"


NewsClient = CryptoCompareNewsClient | RssClient | NewsApiClient


def news_clients(context: dg.AssetExecutionContext, sources: NewsSources) -> dict[str, NewsClient]:
    """A client per configured provider, in the configured order; NewsAPI only with its key."""
    clients: dict[str, NewsClient] = {}
    for provider in sources.providers:
        if provider == "cryptocompare":
            clients[provider] = CryptoCompareNewsClient(
                sources.cryptocompare_url, api_key=sources.cryptocompare_api_key, rate_limited=sources.rate_limited
            )
        elif provider == "rss":
            clients[provider] = RssClient(sources.rss_feeds, rate_limited=sources.rate_limited)
        elif provider == "newsapi":
            if not sources.newsapi_api_key:
                context.log.info("newsapi: NEWSAPI_API_KEY is not set, source skipped")
                continue
            clients[provider] = NewsApiClient(
                sources.newsapi_url, sources.newsapi_api_key, rate_limited=sources.rate_limited
            )
        else:  # load_settings refuses unknown names; this guards programmatic configs
            raise dg.Failure(f"unknown news provider {provider!r}")
    return clients


def fetch_news(
    context: dg.AssetExecutionContext, sources: NewsSources, start: datetime, end: datetime
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Raw articles from every configured provider, and the errors of providers that failed.

    Providers are fetched concurrently (each keeps its own rate limit, retries and breaker); their
    articles are combined in the configured order, so de-duplication does not depend on timing.
    """
    clients = news_clients(context, sources)
    with ThreadPoolExecutor(max_workers=max(1, len(clients)), thread_name_prefix="news") as pool:
        futures = {provider: pool.submit(client.fetch, start, end) for provider, client in clients.items()}
    frames: list[pd.DataFrame] = []
    errors: dict[str, str] = {}
    for provider, future in futures.items():
        try:
            frame = future.result()
        except ProviderError as exc:
            errors[provider] = str(exc)  # "<provider>: <cause> (<url>)"
            context.log.warning(str(exc))
            continue
        context.log.info(f"{provider}: {len(frame)} articles between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
        for feed, message in getattr(clients[provider], "last_errors", {}).items():
            errors[f"{provider} {feed}"] = message  # one feed down: the others still count, the gap is reported
        frames.append(frame)
    if PRIMARY_NEWS_PROVIDER in errors or not frames:
        raise dg.Failure(
            description="news could not be fetched: " + "; ".join(errors.values()),
        )
    return pd.concat(frames, ignore_index=True), errors


@dg.asset(
    key=RAW_NEWS,
    group_name="ingestion",
    kinds={"duckdb", "pandas", "cryptocompare", "rss"},
    description=(
        "Crypto news articles, one row per `article_id` (a hash of the canonical URL, `utm_*` and fragments "
        "stripped), de-duplicated across sources, HTML stripped, tagged with the universe symbols they mention. "
        "Partitioned by the UTC day of `published_at`."
    ),
    metadata={**table_metadata("raw.news"), "partition_expr": "published_at"},
    **PARTITIONED,
)
def raw_news(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, news_sources: NewsSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    raw, errors = fetch_news(context, news_sources, start, end)
    news = normalize_news(raw, universe.symbols)
    news = news[(news["published_at"] >= start) & (news["published_at"] < end)].reset_index(drop=True)
    news["ingested_at"] = pd.Timestamp(datetime.now(UTC))
    news = validate_frame("raw.news", news)
    with warehouse.get_connection() as conn:
        wh.replace_rows(conn, "raw.news", news, time_column="published_at", windows=[(start, end)])
    tagged = news["symbols"].fillna("").str.len().gt(0).sum() if "symbols" in news else 0
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(news)),
            "articles_per_provider": dg.MetadataValue.json(news["provider"].value_counts().to_dict()),
            "tagged_articles": int(tagged),
            "sources_failed": dg.MetadataValue.json(errors),
            "preview": preview(news[["published_at", "source", "title", "symbols"]] if "symbols" in news else news),
        }
    )


@dg.asset(
    key=ARTICLE_SENTIMENT,
    group_name="sentiment",
    kinds={"duckdb", "pandas"},
    deps=[RAW_NEWS],
    description=(
        "One sentiment score (`compound`, -1..1) per (article, tagged symbol, model). The default model is VADER "
        "with a small crypto lexicon (bullish, rekt, rug pull, ...) on title + body."
    ),
    metadata={**table_metadata("features.article_sentiment"), "partition_expr": "published_at"},
    **PARTITIONED,
)
def article_sentiment(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, news_sources: NewsSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    model = get_model(news_sources.sentiment_model)
    with warehouse.get_connection() as conn:
        news = wh.read_window(conn, "raw.news", time_column="published_at", start=start, end=end)
        scores = score_articles(news, model, universe.symbols)
        scores = validate_frame("features.article_sentiment", scores)
        wh.replace_rows(
            conn,
            "features.article_sentiment",
            scores,
            time_column="published_at",
            windows=[(start, end)],
            scope={"model": [model.name]},
        )
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(scores)),
            "articles": len(news),
            "model": model.name,
            "mean_compound_per_symbol": dg.MetadataValue.json(
                scores.groupby("symbol")["compound"].mean().round(4).to_dict()
            ),
        }
    )


@dg.asset(
    key=SENTIMENT_HOURLY,
    group_name="sentiment",
    kinds={"duckdb", "pandas"},
    deps=[
        dg.AssetDep(RAW_PRICES),
        # The 24 h window of the first bars of a day reaches 23 h into the previous day's articles.
        dg.AssetDep(ARTICLE_SENTIMENT, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1)),
    ],
    description=(
        "Features 12-14 per (symbol, hourly bar): mean article sentiment over `[ts - 23h, ts + 1h)`, "
        "`ln(1 + n)` news volume, and the 6 h minus 24 h sentiment momentum. An article counts for a bar only "
        "if it was published before the bar closed. `news_coverage_24h` is the share of the bar's 24 hours "
        "that a successful news provider answer covered (`raw.news_coverage`); where it is 0 nobody looked and "
        "the three features are null (unknown), never 0."
    ),
    metadata={**table_metadata("features.sentiment_hourly"), "partition_expr": "ts"},
    **PARTITIONED,
)
def sentiment_hourly_features(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, news_sources: NewsSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    articles_start, articles_end = upstream_window(context, ARTICLE_SENTIMENT)
    with warehouse.get_connection() as conn:
        bars = wh.read_window(
            conn,
            "raw.prices",
            time_column="ts",
            start=start,
            end=end,
            symbols=universe.symbols,
            columns=["symbol", "ts"],
        )
        scores = wh.read_window(
            conn,
            "features.article_sentiment",
            time_column="published_at",
            start=articles_start,
            end=articles_end,
            symbols=universe.symbols,
        )
        scores = scores[scores["model"] == news_sources.sentiment_model]
        # Every provider answer whose window overlaps the articles' window (one can start days earlier: RSS).
        coverage = wh.read_window(conn, "raw.news_coverage", time_column="window_end", start=articles_start)
        coverage = coverage[coverage["window_start"] < articles_end]
        hourly = sentiment_hourly(bars, scores, coverage)
        hourly = validate_frame("features.sentiment_hourly", hourly)
        wh.replace_rows(
            conn,
            "features.sentiment_hourly",
            hourly,
            time_column="ts",
            windows=[(start, end)],
            scope={"symbol": universe.symbols},
        )
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(hourly)),
            "bars_with_news": int((hourly["news_count_24h"] > 0).sum()) if not hourly.empty else 0,
            "bars_without_news_coverage": int((hourly["news_coverage_24h"] == 0).sum()),
            "news_answers_read": len(coverage),
            "preview": preview(hourly),
        }
    )
