"""raw/news, features/article_sentiment and features/sentiment_hourly: the news side of the pipeline."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import (
    SINGLE_RUN,
    WAREHOUSE_POOL,
    daily_partitions,
    preview,
    provider_kinds,
    row_count,
    table_metadata,
    upstream_window,
)
from crypto_assets.defs.prices import RAW_PRICES
from crypto_assets.defs.resources import NewsSources, Universe, Warehouse
from crypto_assets.providers.news import NewsAnswer
from crypto_assets.providers.registry import NEWS
from crypto_assets.schemas import validate_frame
from crypto_assets.transforms.news import carried_articles, carried_forward, coverage_rows, normalize_news
from crypto_assets.transforms.sentiment import get_model, score_articles, sentiment_hourly

RAW_NEWS = dg.AssetKey(["raw", "news"])
ARTICLE_SENTIMENT = dg.AssetKey(["features", "article_sentiment"])
SENTIMENT_HOURLY = dg.AssetKey(["features", "sentiment_hourly"])


def fetch_news(
    context: dg.AssetExecutionContext, sources: NewsSources, start: datetime, end: datetime
) -> list[NewsAnswer]:
    """Every configured provider's answer for [start, end): articles and coverage windows, in configured order.

    Providers are asked concurrently (each keeps its own rate limit, retries and breaker). A provider that
    fails gives failed coverage windows, never an exception: news never stops prices and price features.
    """
    clients, skipped = sources.build()
    for item in skipped:
        context.log.info(item.reason)
    with ThreadPoolExecutor(max_workers=max(1, len(clients)), thread_name_prefix="news") as pool:
        futures = [pool.submit(client.fetch, start, end) for client in clients]
    answers = [future.result() for future in futures]
    for answer in answers:
        ok = sum(1 for w in answer.coverage if w.status == "ok")
        context.log.info(
            f"{answer.provider}: {len(answer.articles)} articles between {start:%Y-%m-%d} and {end:%Y-%m-%d}; "
            f"{ok} window(s) answered, {len(answer.failed)} failed"
        )
        for failed in answer.failed:
            context.log.warning(
                f"{answer.provider}: not covered {failed.start:%Y-%m-%d %H:%M} .. "
                f"{failed.end:%Y-%m-%d %H:%M}: {failed.detail}"
            )
    return answers


def _answer_windows(answers: list[NewsAnswer]) -> list[dict[str, object]]:
    return [
        {
            "provider": answer.provider,
            "start": w.start,
            "end": w.end,
            "status": w.status,
            "detail": w.detail,
            "fetched_at": answer.fetched_at,
        }
        for answer in answers
        for w in answer.coverage
    ]


@dg.asset(
    key=RAW_NEWS,
    group_name="ingestion",
    kinds=provider_kinds(NEWS),
    description=(
        "Crypto news articles, one row per `article_id` (a hash of the canonical URL, `utm_*` and fragments "
        "stripped), de-duplicated across sources, HTML stripped, tagged with the universe symbols they mention. "
        "Partitioned by the UTC day of `published_at`. Also writes `raw.news_coverage`: per provider answer, the "
        "window it covered (`ok`), could not answer (`failed`) or cannot answer (`skipped`), split at UTC days. "
        "A provider that is down now keeps what it answered before for the day; a failing source never fails "
        "the run."
    ),
    metadata={**table_metadata("raw.news"), "partition_expr": "published_at"},
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
)
def raw_news(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, news_sources: NewsSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    answers = fetch_news(context, news_sources, start, end)
    raw = pd.concat([answer.articles for answer in answers], ignore_index=True) if answers else pd.DataFrame()
    fresh_news = normalize_news(raw, universe.symbols)
    fresh_coverage = coverage_rows(_answer_windows(answers), raw)
    with warehouse.get_connection() as conn:
        stored_coverage = wh.read_window(conn, "raw.news_coverage", time_column="window_start", start=start, end=end)
        coverage, carried = carried_forward(fresh_coverage, stored_coverage, [answer.provider for answer in answers])
        fresh_news = fresh_news[(fresh_news["published_at"] >= start) & (fresh_news["published_at"] < end)]
        news = fresh_news.assign(ingested_at=pd.Timestamp(datetime.now(UTC)))
        if carried:
            days = [day for _, day in carried]
            stored_news = wh.read_window(
                conn, "raw.news", time_column="published_at", start=min(days), end=max(days) + pd.Timedelta(days=1)
            )
            kept = carried_articles(stored_news, carried)
            news = pd.concat([news, kept[[c for c in news.columns if c in kept]]], ignore_index=True)
        news = news.drop_duplicates("article_id", keep="first").reset_index(drop=True)
        news = validate_frame("raw.news", news)
        coverage = validate_frame("raw.news_coverage", coverage)
        wh.replace_partitions(
            conn,
            [
                wh.Write("raw.news", news, "published_at", [(start, end)]),
                wh.Write("raw.news_coverage", coverage, "window_start", [(start, end)]),
            ],
        )
    notes = [f"{provider} {day:%Y-%m-%d}" for provider, day in carried]
    for note in notes:
        context.log.warning(f"{note}: the provider answered nothing now; its earlier articles of the day are kept")
    tagged = news["symbols"].fillna("").str.len().gt(0).sum() if "symbols" in news else 0
    status_hours = (coverage["window_end"] - coverage["window_start"]).dt.total_seconds().div(3600)
    hours_by = status_hours.groupby([coverage["provider"], coverage["status"]]).sum().round(1)
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(news)),
            "articles_per_provider": dg.MetadataValue.json(news["provider"].value_counts().to_dict()),
            "tagged_articles": int(tagged),
            "coverage_hours": dg.MetadataValue.json(
                {f"{provider} {status}": float(hours) for (provider, status), hours in hours_by.items()}
            ),
            "carried_forward": dg.MetadataValue.json(notes),
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
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
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
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
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
