"""raw/prices: hourly OHLCV bars per symbol from the price providers, with per-day failover."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import PARTITIONED, day_window, days_of, preview, row_count, table_metadata
from crypto_assets.defs.resources import PriceSources, Universe, Warehouse
from crypto_assets.errors import ProviderError
from crypto_assets.providers.prices import PriceClient, empty_prices_frame, fetch_prices_with_failover
from crypto_assets.schemas import validate_frame

RAW_PRICES = dg.AssetKey(["raw", "prices"])
PRICE_FETCH_THREADS = 4


def merge_days(days: list[date]) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of days as [start, end) windows."""
    windows: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        start, end = day_window(day)
        if windows and windows[-1][1] == start:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def second_provider_sample(frame: pd.DataFrame, clients: list[PriceClient], day: date) -> pd.DataFrame:
    """The bars of ``day`` from the next provider (after the one that served it) that answers, per symbol.

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
                samples.append(client.fetch_hourly(str(symbol), start, end))
                break
            except ProviderError:
                continue
    return pd.concat(samples, ignore_index=True) if samples else frame.iloc[:0]


def failure_report(failed: dict[date, dict[str, dict[str, str]]]) -> str:
    """One line per symbol and stretch of consecutive days that failed with the same errors.

    A provider's failed request covers many days, all with its one error: per day, a 90-day outage of six
    symbols would read as 540 near-identical lines.
    """
    lines = []
    for symbol in sorted({symbol for errors_by_symbol in failed.values() for symbol in errors_by_symbol}):
        stretches: list[tuple[date, date, dict[str, str]]] = []
        for day in sorted(day for day in failed if symbol in failed[day]):
            errors = failed[day][symbol]
            if stretches and stretches[-1][2] == errors and stretches[-1][1] + timedelta(days=1) == day:
                stretches[-1] = (stretches[-1][0], day, errors)
            else:
                stretches.append((day, day, errors))
        for first, last, errors in stretches:
            days = str(first) if first == last else f"{first}..{last}"
            lines.append(f"{days} {symbol}: {'; '.join(errors.values())}")  # each error names its provider
    return "\n".join(lines)


@dg.asset(
    key=RAW_PRICES,
    group_name="ingestion",
    kinds={"duckdb", "pandas", "binance", "coinbase"},
    description=(
        "Hourly OHLCV bars per universe symbol (bar open time `ts`, UTC). For each (symbol, day) the providers "
        "of `CRYPTO_ASSETS_PRICE_PROVIDERS` are tried in order; `provider` records who served each row. "
        "A day no provider can serve fails its partition and keeps its previous rows."
    ),
    metadata={**table_metadata("raw.prices"), "partition_expr": "ts"},
    **PARTITIONED,
)
def raw_prices(
    context: dg.AssetExecutionContext, warehouse: Warehouse, universe: Universe, price_sources: PriceSources
) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    days = days_of(start, end)
    frames: list[pd.DataFrame] = []
    failed: dict[date, dict[str, dict[str, str]]] = {}
    provider_days: dict[str, int] = {}
    retries = 0
    retry_wait = 0.0
    # Symbols are fetched concurrently, each with its own clients (sessions are not shared across threads);
    # every provider's rate limiter and circuit breaker are process-wide, so the budget stays the same.
    # Results are taken in universe order, so the log and the frame do not depend on timing.
    with ThreadPoolExecutor(max_workers=min(PRICE_FETCH_THREADS, len(universe.symbols)) or 1) as pool:
        futures = [
            pool.submit(fetch_prices_with_failover, symbol, days, price_sources.clients())
            for symbol in universe.symbols
        ]
        for number, (symbol, future) in enumerate(zip(universe.symbols, futures, strict=True), start=1):
            result = future.result()
            frames.append(result.frame)
            for day, errors in result.failed_days.items():
                failed.setdefault(day, {})[symbol] = errors
            for provider, count in result.provider_days.items():
                provider_days[provider] = provider_days.get(provider, 0) + count
            retries += int(result.stats.get("retries", 0))
            retry_wait += float(result.stats.get("retry_wait_seconds", 0.0))
            context.log.info(
                f"[{number}/{len(universe.symbols)}] {symbol}: {len(result.frame)} bars, "
                f"days per provider {result.provider_days}, {len(result.failed_days)} days failed"
            )

    frame = pd.concat(frames, ignore_index=True) if frames else empty_prices_frame()
    good_days = [day for day in days if day not in failed]
    if not frame.empty:
        frame = frame[frame["ts"].dt.date.isin(good_days)].reset_index(drop=True)
    frame["ingested_at"] = pd.Timestamp(datetime.now(UTC))
    frame = validate_frame("raw.prices", frame)
    with warehouse.get_connection() as conn:
        wh.replace_rows(
            conn,
            "raw.prices",
            frame,
            time_column="ts",
            windows=merge_days(good_days),
            scope={"symbol": universe.symbols},
        )

    metadata: dict[str, object] = {
        **row_count(context, len(frame)),
        "symbols": ", ".join(universe.symbols),
        "providers_used": dg.MetadataValue.json(frame["provider"].value_counts().to_dict() if not frame.empty else {}),
        "first_bar_in_run": str(frame["ts"].min()) if not frame.empty else "none",
        "last_bar_in_run": str(frame["ts"].max()) if not frame.empty else "none",
        "http_retries": retries,
        "http_retry_wait_s": round(retry_wait, 3),
        "preview": preview(frame),
    }
    if failed:
        for day in good_days:
            context.log_event(
                dg.AssetMaterialization(asset_key=RAW_PRICES, partition=day.isoformat(), metadata={"landed": True})
            )
        report = failure_report(failed)
        raise dg.Failure(
            description=(
                f"{len(failed)} of {len(days)} days could not be served by any provider; "
                f"the other {len(good_days)} days landed. Re-run the failed days once a provider recovers:\n{report}"
            ),
            metadata={"failed_days": ", ".join(str(day) for day in sorted(failed)), **metadata},
        )
    return dg.MaterializeResult(metadata=metadata)
