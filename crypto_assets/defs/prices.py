"""raw/prices: hourly OHLCV bars per symbol from the price providers, with per-day failover."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import (
    SINGLE_RUN,
    WAREHOUSE_POOL,
    daily_partitions,
    day_window,
    days_of,
    preview,
    provider_kinds,
    row_count,
    table_metadata,
)
from crypto_assets.defs.resources import PriceSources, Universe, Warehouse
from crypto_assets.errors import ProviderError
from crypto_assets.providers.prices import (
    ANSWER_REJECTED,
    COMPLETE,
    FAILED,
    NO_DATA,
    PARTIAL,
    FailoverResult,
    PriceClient,
    day_problem,
    distinct_bars,
    empty_prices_frame,
    fetch_prices_with_failover,
)
from crypto_assets.providers.registry import PRICES
from crypto_assets.schemas import validate_frame, with_dates
from crypto_assets.timegrid import consecutive_runs

RAW_PRICES = dg.AssetKey(["raw", "prices"])
PRICE_FETCH_THREADS = 4


def merge_days(days: list[date]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of days as [start, end) windows."""
    return [(day_window(run[0])[0], day_window(run[-1])[1]) for run in consecutive_runs(sorted(days))]


def second_provider_sample(frame: pd.DataFrame, clients: list[PriceClient], day: date) -> pd.DataFrame:
    """The bars of ``day`` from the first provider in order that did not serve it and whose answer is acceptable,
    per symbol (judged as the failover judges answers: ``day_problem``).

    Used to score accuracy: a second opinion on a sample of stored bars.
    """
    start, end = day_window(day)
    samples = []
    for symbol, bars in frame[frame["ts"].dt.date == day].groupby("symbol"):
        served_by = set(bars["provider"])
        for client in clients:
            if client.name in served_by:
                continue
            try:
                answer = client.fetch_hourly(str(symbol), start, end)
            except ProviderError:
                continue
            if not answer.empty and day_problem(answer) is None:
                samples.append(distinct_bars(answer))
                break
    return pd.concat(samples, ignore_index=True) if samples else frame.iloc[:0]


def coverage_frame(symbol_days: dict[str, FailoverResult]) -> pd.DataFrame:
    """``raw.price_coverage`` rows: one per (symbol, day) the failover decided."""
    rows = [
        {
            "symbol": symbol,
            "day": outcome.day,
            "status": outcome.status,
            "bars": outcome.bars,
            "provider": outcome.provider,
            "detail": outcome.detail,
        }
        for symbol, result in symbol_days.items()
        for outcome in result.days.values()
    ]
    frame = pd.DataFrame(rows, columns=["symbol", "day", "status", "bars", "provider", "detail"])
    frame["bars"] = frame["bars"].astype("int64")
    frame["provider"] = frame["provider"].astype(object)
    return frame


def keep_stored_days(
    coverage: pd.DataFrame, stored: pd.DataFrame, stored_bars: pd.DataFrame, now: datetime
) -> pd.DataFrame:
    """Failed and no_data (symbol, day)s whose bars an earlier run stored keep them, and their coverage row:
    the row stays as it was, its detail saying what this re-fetch got (so a provider outage never erases bars).

    ``day`` is a ``datetime.date`` in all three frames."""
    out = coverage.copy()
    unserved = coverage[coverage["status"].isin([FAILED, NO_DATA])]
    if unserved.empty:
        return out
    counts = {(row.symbol, row.day): int(row.bars) for row in stored_bars.itertuples(index=False)}
    previous = {(row.symbol, row.day): row for row in stored.itertuples(index=False)}
    for row in unserved.itertuples():
        key = (row.symbol, row.day)
        if counts.get(key, 0) == 0:
            continue
        attempt = f"re-fetch {now:%Y-%m-%d %H:%M} UTC got {row.status} ({row.detail}); stored bars kept"
        before = previous.get(key)
        if before is not None:
            out.loc[row.Index, ["status", "bars", "provider"]] = [before.status, int(before.bars), before.provider]
            out.loc[row.Index, "detail"] = f"{before.detail} | {attempt}"
        else:
            out.loc[row.Index, ["bars", "detail"]] = [counts[key], attempt]
    return out


@dg.asset(
    key=RAW_PRICES,
    group_name="ingestion",
    kinds=provider_kinds(PRICES),
    description=(
        "Hourly OHLCV bars per universe symbol (bar open time `ts`, UTC). For each (symbol, day) the providers "
        "of `CRYPTO_ASSETS_PRICE_PROVIDERS` are asked in order until one answers the day completely; the most "
        "complete answer wins the day as a whole (never stitched from two venues); `provider` records who served "
        "each row. An answer that contradicts itself (two bars for one hour, high below low, a price that is not "
        "positive) is rejected and the next provider asked. Writes `raw.price_coverage`: one row per (symbol, day), "
        "`complete`, `partial`, `no_data` (not listed yet, delisted, unknown) or `failed`. A (symbol, day) is the "
        "unit of failure: a failed one keeps its previous rows and never stops the other symbols' days."
    ),
    metadata={**table_metadata("raw.prices"), "partition_expr": "ts"},
    partitions_def=daily_partitions,
    backfill_policy=SINGLE_RUN,
    pool=WAREHOUSE_POOL,
)
def raw_prices(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, price_sources: PriceSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    days = days_of(start, end)
    now = datetime.now(UTC)
    results: dict[str, FailoverResult] = {}
    # Symbols are fetched concurrently, each with its own clients (sessions are not shared across threads);
    # every provider's rate limiter and circuit breaker are process-wide, so the budget stays the same.
    # Results are taken in universe order, so the log and the frame do not depend on timing.
    with ThreadPoolExecutor(max_workers=min(PRICE_FETCH_THREADS, len(universe.symbols)) or 1) as pool:
        futures = [
            pool.submit(fetch_prices_with_failover, symbol, days, price_sources.clients(), now=now)
            for symbol in universe.symbols
        ]
        for number, (symbol, future) in enumerate(zip(universe.symbols, futures, strict=True), start=1):
            result = results[symbol] = future.result()
            counts = {status: len(result.with_status(status)) for status in (COMPLETE, PARTIAL, NO_DATA, FAILED)}
            served = pd.Series([o.provider for o in result.days.values() if o.provider]).value_counts().to_dict()
            context.log.info(
                f"[{number}/{len(universe.symbols)}] {symbol}: {len(result.frame)} bars; days "
                + ", ".join(f"{count} {status}" for status, count in counts.items() if count)
                + (f"; served by {served}" if served else "")
            )
            for day, outcome in sorted(result.days.items()):
                if outcome.status == FAILED or ANSWER_REJECTED in outcome.detail:
                    context.log.warning(f"{symbol} {day}: {outcome.status}: {outcome.detail}")

    coverage = coverage_frame(results)
    first_day, last_day = days[0], days[-1] + timedelta(days=1)
    with warehouse.get_connection() as conn:
        stored = wh.read_window(
            conn, "raw.price_coverage", time_column="day", start=first_day, end=last_day, symbols=universe.symbols
        )
        stored_bars = (
            conn.execute(
                "SELECT symbol, CAST(ts AS DATE) AS day, count(*) AS bars FROM raw.prices "
                "WHERE ts >= ? AND ts < ? AND symbol IN (SELECT unnest(?)) GROUP BY ALL",
                [start, end, list(universe.symbols)],
            ).df()
            if wh.table_exists(conn, "raw.prices")
            else pd.DataFrame(columns=["symbol", "day", "bars"])
        )
        stored = with_dates("raw.price_coverage", stored)
        stored_bars = with_dates("raw.price_coverage", stored_bars)
        coverage = validate_frame("raw.price_coverage", keep_stored_days(coverage, stored, stored_bars, now))
        frame = pd.concat([r.frame for r in results.values()], ignore_index=True) if results else empty_prices_frame()
        frame = validate_frame("raw.prices", frame.assign(ingested_at=pd.Timestamp(now)))
        by_symbol = dict(tuple(frame.groupby("symbol", sort=False)))
        writes = [
            wh.Write("raw.price_coverage", coverage, "day", [(first_day, last_day)], {"symbol": universe.symbols}),
            *(
                wh.Write(
                    "raw.prices",
                    by_symbol.get(symbol, frame.iloc[:0]),
                    "ts",
                    merge_days(result.with_status(COMPLETE, PARTIAL)),
                    {"symbol": [symbol]},
                )
                for symbol, result in results.items()
            ),
        ]
        wh.replace_partitions(conn, writes)

    status_counts = coverage["status"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            **row_count(context, len(frame)),
            "symbols": ", ".join(universe.symbols),
            "symbol_days": dg.MetadataValue.json(status_counts),
            "providers_used": dg.MetadataValue.json(
                frame["provider"].value_counts().to_dict() if not frame.empty else {}
            ),
            "first_bar_in_run": str(frame["ts"].min()) if not frame.empty else "none",
            "last_bar_in_run": str(frame["ts"].max()) if not frame.empty else "none",
            "http_retries": int(sum(r.stats.get("retries", 0) for r in results.values())),
            "http_retry_wait_s": round(sum(float(r.stats.get("retry_wait_seconds", 0.0)) for r in results.values()), 3),
            "preview": preview(frame),
        }
    )
