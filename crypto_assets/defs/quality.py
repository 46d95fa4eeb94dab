"""Asset checks: the quality rules of ``transforms/quality.py`` wired to the warehouse tables.

Blocking checks (severity ERROR) stop downstream assets in the same run, so bad bars never reach
``features.*`` or ``ml.*``. Rules whose failure must write nothing at all are enforced earlier, by the
pandera models inside each asset (``schemas.validate_frame``). Real market events (the LUNA crash)
are data: return anomalies only WARN.

Checks read the rows of the partitions the run wrote (the run's partition window), or the whole
table when launched alone.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from crypto_assets import warehouse as wh
from crypto_assets.defs.common import WAREHOUSE_POOL
from crypto_assets.defs.features import FEATURE_VECTORS
from crypto_assets.defs.ml import TRAINING_SET
from crypto_assets.defs.news import RAW_NEWS
from crypto_assets.defs.prices import RAW_PRICES
from crypto_assets.defs.resources import Universe, Warehouse
from crypto_assets.transforms import quality as q
from crypto_assets.transforms.features import (
    FEATURE_NAMES,
    SENTIMENT_FEATURES,
    TECHNICAL_FEATURES,
    complete_windows,
)
from crypto_assets.transforms.indicators import normalize_ts

# How old the newest stored bar / article may be before "the data" (not the last run) counts as stale.
DATA_FRESHNESS_WARN = timedelta(hours=2)
NEWS_FRESHNESS_WARN = timedelta(hours=6)
# Bars before a feature's longest window (MACD signal: 26 + 9) is full; nulls there are expected.
WARMUP_BARS = 35


def run_window(context: dg.AssetCheckExecutionContext) -> tuple[datetime | None, datetime | None]:
    """The time window of the partitions this run materialized, or (None, None) for the whole table."""
    tags = context.run.tags
    start = tags.get("dagster/asset_partition_range_start") or tags.get("dagster/partition")
    end = tags.get("dagster/asset_partition_range_end") or tags.get("dagster/partition")
    if not start or not end:
        return None, None
    first = datetime.fromisoformat(start).replace(tzinfo=UTC)
    last = datetime.fromisoformat(end).replace(tzinfo=UTC)
    return first, last + timedelta(days=1)


def _target(check: dg.AssetCheckSpec | None) -> dict[str, object]:
    """The keyword arguments naming ``check`` in a result: needed where one step evaluates several checks."""
    return {} if check is None else {"asset_key": check.asset_key, "check_name": check.name}


def to_check_result(
    result: q.RuleResult, *, check: dg.AssetCheckSpec | None = None, **extra: object
) -> dg.AssetCheckResult:
    """A RuleResult as a Dagster check result: severity, description, metrics and the first failures."""
    metadata: dict[str, object] = {"description": result.description}
    for key, value in result.metrics.items():
        if isinstance(value, bool | int | float | str) or value is None:
            metadata[key] = value if value is not None else "none"
        else:
            metadata[key] = dg.MetadataValue.json(_jsonable(value))
    if not result.failures.empty:
        metadata["failures"] = dg.MetadataValue.md(result.failures.head(20).to_markdown(index=False))
    metadata.update(extra)
    return dg.AssetCheckResult(
        passed=bool(result.passed),
        severity=dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN,
        description=result.description,
        metadata=metadata,
        **_target(check),
    )


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _newest(conn: duckdb.DuckDBPyConnection, table: str, column: str) -> datetime | None:
    """The latest ``column`` value stored in ``table`` (None when it is empty or does not exist)."""
    if not wh.table_exists(conn, table):
        return None
    return conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]


# ------------------------------------------------------------------------------------------ raw/prices

PRICE_CHECKS = {
    spec.name: spec
    for spec in [
        dg.AssetCheckSpec(
            "ohlc_consistency", asset=RAW_PRICES, blocking=True, description="low <= open, close <= high for every bar"
        ),
        dg.AssetCheckSpec(
            "no_duplicate_bars", asset=RAW_PRICES, blocking=True, description="at most one bar per (symbol, ts)"
        ),
        dg.AssetCheckSpec(
            "completeness",
            asset=RAW_PRICES,
            description="24 bars per symbol per UTC day (only closed hours count for today); lists missing hours",
        ),
        dg.AssetCheckSpec(
            "current_partition_staleness",
            asset=RAW_PRICES,
            description="the newest bar of the current UTC day closed within 2 h (skipped for finished days)",
        ),
        dg.AssetCheckSpec(
            "return_anomalies",
            asset=RAW_PRICES,
            description="hourly returns beyond a robust z-score of 6 and the IQR fences: flagged, never blocking",
        ),
        dg.AssetCheckSpec(
            "prices_data_freshness",
            asset=RAW_PRICES,
            description="data freshness: the newest bar STORED closed within 2 h of now (not when the asset last ran)",
        ),
        dg.AssetCheckSpec(
            "symbol_day_coverage",
            asset=RAW_PRICES,
            description=(
                "every (symbol, day) of the run served completely (raw.price_coverage): failed ones are errors (a "
                "re-run can help), partial and no_data ones (gaps, not listed yet, delisted) warnings; never blocking"
            ),
        ),
    ]
}


@dg.multi_asset_check(
    specs=list(PRICE_CHECKS.values()),
    pool=WAREHOUSE_POOL,
    description="the raw/prices checks, one read of the run's bars",
)
def raw_prices_checks(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, universe: Universe
) -> Iterator[dg.AssetCheckResult]:
    start, end = run_window(context)
    with warehouse.get_connection() as conn:
        prices = wh.read_window(conn, "raw.prices", time_column="ts", start=start, end=end, symbols=universe.symbols)
        newest = _newest(conn, "raw.prices", "ts")
        coverage = wh.read_window(
            conn,
            "raw.price_coverage",
            time_column="day",
            start=start.date() if start else None,
            end=end.date() if end else None,
            symbols=universe.symbols,
        )
    now = datetime.now(UTC)
    yield to_check_result(q.ohlc_consistency(prices), check=PRICE_CHECKS["ohlc_consistency"])
    yield to_check_result(q.duplicate_bars(prices), check=PRICE_CHECKS["no_duplicate_bars"])
    yield _completeness(prices, start, end, universe.symbols, now)
    yield _current_partition_staleness(prices, end, universe.symbols, now)
    yield to_check_result(q.return_anomalies(prices), check=PRICE_CHECKS["return_anomalies"])
    yield _freshness_result(
        newest, timedelta(hours=1), DATA_FRESHNESS_WARN, "bar", check=PRICE_CHECKS["prices_data_freshness"]
    )
    yield to_check_result(q.symbol_day_coverage(coverage), check=PRICE_CHECKS["symbol_day_coverage"])


def _completeness(
    prices: pd.DataFrame, start: datetime | None, end: datetime | None, symbols: list[str], now: datetime
) -> dg.AssetCheckResult:
    check = PRICE_CHECKS["completeness"]
    if start is None:
        if prices.empty:
            return dg.AssetCheckResult(passed=False, description="raw.prices is empty", **_target(check))
        start = prices["ts"].min().floor("D").to_pydatetime()
        end = (prices["ts"].max().floor("D") + pd.Timedelta(days=1)).to_pydatetime()
    result = q.completeness(prices, start, end, symbols, now)
    result.severity = "warn"  # a gap is reported; features never invent the missing bar
    return to_check_result(result, check=check)


def _current_partition_staleness(
    prices: pd.DataFrame, end: datetime | None, symbols: list[str], now: datetime
) -> dg.AssetCheckResult:
    check = PRICE_CHECKS["current_partition_staleness"]
    if end is not None and end < now - timedelta(hours=1):
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description="skipped: the run wrote finished days only, no current partition",
            metadata={"skipped": True},
            **_target(check),
        )
    result = q.staleness(prices, now, DATA_FRESHNESS_WARN, symbols=symbols)
    result.severity = "warn"
    return to_check_result(result, check=check)


def _freshness_result(
    newest: datetime | None, offset: timedelta, limit: timedelta, what: str, *, check: dg.AssetCheckSpec
) -> dg.AssetCheckResult:
    now = datetime.now(UTC)
    if newest is None:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, description=f"no {what} stored yet", **_target(check)
        )
    age = now - (pd.Timestamp(newest).to_pydatetime() + offset)
    return dg.AssetCheckResult(
        passed=age <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"newest {what} is {age.total_seconds() / 3600:,.1f} h old (limit {limit})",
        metadata={"newest": str(newest), "age_hours": round(age.total_seconds() / 3600, 2)},
        **_target(check),
    )


# -------------------------------------------------------------------------------------------- raw/news

NEWS_CHECKS = {
    spec.name: spec
    for spec in [
        dg.AssetCheckSpec(
            "no_duplicate_articles",
            asset=RAW_NEWS,
            blocking=True,
            description="article_id unique; one URL never under two ids",
        ),
        dg.AssetCheckSpec(
            "no_future_articles", asset=RAW_NEWS, blocking=True, description="no article published in the future"
        ),
        dg.AssetCheckSpec("non_empty_titles", asset=RAW_NEWS, description="titles are not empty"),
        dg.AssetCheckSpec(
            "news_volume",
            asset=RAW_NEWS,
            description="no day with far fewer articles than the median of the 14 days before it (warning)",
        ),
        dg.AssetCheckSpec(
            "news_data_freshness",
            asset=RAW_NEWS,
            description="data freshness: the newest article STORED is under 6 h old",
        ),
        dg.AssetCheckSpec(
            "news_coverage",
            asset=RAW_NEWS,
            description=(
                "every hour of the run's days was covered by at least one news provider (raw.news_coverage); "
                "uncovered hours make sentiment null there, never 0 (warning)"
            ),
        ),
    ]
}


@dg.multi_asset_check(
    specs=list(NEWS_CHECKS.values()),
    pool=WAREHOUSE_POOL,
    description="the raw/news checks, one read of the run's articles",
)
def raw_news_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetCheckResult]:
    start, end = run_window(context)
    with warehouse.get_connection() as conn:
        news = wh.read_window(conn, "raw.news", time_column="published_at", start=start, end=end)
        newest = _newest(conn, "raw.news", "published_at")
        coverage = wh.read_window(conn, "raw.news_coverage", time_column="window_start", start=start, end=end)
    yield to_check_result(q.duplicate_articles(news), check=NEWS_CHECKS["no_duplicate_articles"])
    yield to_check_result(q.future_articles(news, datetime.now(UTC)), check=NEWS_CHECKS["no_future_articles"])
    yield to_check_result(q.empty_titles(news), check=NEWS_CHECKS["non_empty_titles"])
    yield _news_volume(news)
    yield _freshness_result(
        newest, timedelta(0), NEWS_FRESHNESS_WARN, "article", check=NEWS_CHECKS["news_data_freshness"]
    )
    yield to_check_result(
        q.news_coverage_by_day(coverage, start, end, datetime.now(UTC)), check=NEWS_CHECKS["news_coverage"]
    )


def _news_volume(news: pd.DataFrame) -> dg.AssetCheckResult:
    check = NEWS_CHECKS["news_volume"]
    if news.empty:
        return dg.AssetCheckResult(
            passed=True, severity=dg.AssetCheckSeverity.WARN, description="no articles", **_target(check)
        )
    table = q.news_volume_by_day(news.groupby(news["published_at"].dt.floor("D")).size())
    flagged = [(str(day.date()), int(count)) for day, count in table.loc[table["thin"], "count"].items()]
    return dg.AssetCheckResult(
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(flagged)} of {len(table)} days have under 25% of the usual article count",
        metadata={"thin_days": dg.MetadataValue.json(dict(flagged))},
        **_target(check),
    )


# ------------------------------------------------------------------------------- features and training


def warmed_up(features: pd.DataFrame, bars: pd.DataFrame, warmup: int = WARMUP_BARS) -> pd.DataFrame:
    """Per feature (one boolean column each, ``features``' index): the rows whose value must be present.

    A row is judged for a feature when that feature's lag or window is complete (features.md "Gaps, venues and
    news coverage", :func:`~crypto_assets.transforms.features.complete_windows`): for 1-5 no gap in the last
    24 hours and at least ``warmup`` stored bars of the series before it (the ``ta`` warm-up); for 6-9 the
    symbol's bars; for 10-11 the symbol's and BTC's bars; for 12-14 ``news_coverage_24h > 0``. ``bars`` (symbol,
    ts) must reach back to the start of each series (and 25 hours before the first row at least).
    """
    windows = complete_windows(bars)
    windows["_warm"] = windows.groupby("symbol").cumcount().to_numpy() >= warmup
    keys = pd.DataFrame({"symbol": features["symbol"].astype(str).to_numpy(), "ts": normalize_ts(features["ts"]).array})
    merged = keys.merge(windows, on=["symbol", "ts"], how="left")  # a row without a stored bar: judged nowhere
    coverage = features["news_coverage_24h"].to_numpy(dtype="float64") if "news_coverage_24h" in features else None
    judged = {}
    for name in FEATURE_NAMES:
        if name in SENTIMENT_FEATURES:
            mask = coverage > 0 if coverage is not None else np.ones(len(features), dtype=bool)
        else:
            mask = merged[name].eq(True).to_numpy()
            if name in TECHNICAL_FEATURES:
                mask &= merged["_warm"].eq(True).to_numpy()
        judged[name] = mask
    return pd.DataFrame(judged, index=features.index)


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=FEATURE_VECTORS,
    blocking=True,
    description=(
        "null rate per feature is at most 1% on the rows whose lag or window is complete (a gap of the symbol, "
        "of BTC for the cross-asset features, or no news coverage for the sentiment ones never counts), after "
        "each series' 35-bar warm-up"
    ),
)
def feature_null_rates(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, universe: Universe):
    start, end = run_window(context)
    with warehouse.get_connection() as conn:
        features = wh.read_window(
            conn, "features.feature_vectors", time_column="ts", start=start, end=end, symbols=universe.symbols
        )
        bars = wh.read_window(
            conn, "raw.prices", time_column="ts", end=end, symbols=universe.symbols, columns=["symbol", "ts"]
        )
    judged = warmed_up(features, bars)
    return to_check_result(q.null_rates(features, warmup_bars=0, judged=judged))


TRAINING_CHECKS = {
    spec.name: spec
    for spec in [
        dg.AssetCheckSpec(
            "no_leakage",
            asset=TRAINING_SET,
            blocking=True,
            description="no leakage: every label is the return of the NEXT bar (label ts > feature ts)",
        ),
        dg.AssetCheckSpec(
            "splits_purged",
            asset=TRAINING_SET,
            blocking=True,
            description="splits chronological and purged: >= 24 bars between splits",
        ),
    ]
}


@dg.multi_asset_check(
    specs=list(TRAINING_CHECKS.values()),
    pool=WAREHOUSE_POOL,
    description="the ml/training_set checks, one read of the table",
)
def training_set_checks(warehouse: Warehouse) -> Iterator[dg.AssetCheckResult]:
    with warehouse.get_connection() as conn:
        table = wh.read_window(conn, "ml.training_set", time_column="ts")
    yield to_check_result(q.leakage_guard(table), check=TRAINING_CHECKS["no_leakage"])
    yield to_check_result(q.splits_purged(table), check=TRAINING_CHECKS["splits_purged"])
