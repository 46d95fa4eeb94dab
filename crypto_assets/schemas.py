"""One definition per warehouse table: pandera models, and the Dagster column schema and DuckDB DDL made from them.

The models hold what a single row or key must satisfy (types, nullability, ranges, unique grain, UTC
hourly ``ts``). Rules across rows or tables (OHLC consistency, completeness, staleness, leakage) live in
``crypto_assets.transforms.quality``. Extra columns are allowed (``strict = False``): the warehouse
spec lets tables grow.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa
from pandas.api.types import is_float_dtype
from pandera.engines import pandas_engine
from pandera.typing import Series

from crypto_assets.transforms.features import (
    FEATURE_CATALOGUE,
    FEATURE_NAMES,
    PROVENANCE_CATALOGUE,
    SENTIMENT_FEATURES,
    FeatureSpec,
    ProvenanceSpec,
)
from crypto_assets.transforms.training import SPLITS

# The 16 features of features.md in its order (labels and splits too) are defined once, by the code making them.
FEATURE_COLUMNS: tuple[str, ...] = FEATURE_NAMES
# ``symbol`` value of a quality.partition_scores row that scores the whole universe.
ALL_SYMBOLS = "*"
# Same rule as crypto_assets.symbols.validate_symbol.
_SYMBOL_PATTERN = r"^[A-Z0-9]{2,15}$"
_UTC = {"dtype_kwargs": {"unit": "ns", "tz": "UTC"}}
# Counts the warehouse contract (warehouse.md) types INTEGER: int64 in pandas like every count, INTEGER in DuckDB
# (read back as int32, widened again by validate_frame).
_INTEGER = {"metadata": {"duckdb_type": "INTEGER"}}
_UTC_ALIASES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT"}


class _WarehouseModel(pa.DataFrameModel):
    """Shared config and checks: extra columns allowed, no coercion, no infinities in float columns."""

    class Config:
        strict = False
        coerce = False

    # Named by the method: pandera 0.35 drops the name/description kwargs of an inherited check in subclasses.
    @pa.check(".*", regex=True)
    def finite(cls, series: pd.Series) -> pd.Series:
        if is_float_dtype(series.dtype):
            return pd.Series(np.isfinite(series.to_numpy()), index=series.index)
        return pd.Series(True, index=series.index)


def _on_the_hour(series: pd.Series) -> pd.Series:
    return series == series.dt.floor("h")


_HOURLY = {"name": "on_the_hour", "description": "on the hour (bar open time)"}


def _symbol(description: str = "universe symbol, e.g. BTC") -> Any:
    return pa.Field(str_matches=_SYMBOL_PATTERN, description=description)


def _bar_ts() -> Any:
    return pa.Field(**_UTC, description="bar open time, UTC, on the hour; the bar covers [ts, ts + 1h)")


def _catalogue_field(spec: FeatureSpec | ProvenanceSpec, description: str, *, nullable: bool, **extra: Any) -> Any:
    """Field of a catalogue column (a feature's formula, a provenance column's definition), with its value bounds."""
    return pa.Field(nullable=nullable, description=description, **spec.bounds(), **extra)


def _ts_on_the_hour(cls: Any, ts: pd.Series) -> pd.Series:
    return _on_the_hour(ts)


def _bar_table_model(
    name: str, doc: str, columns: dict[str, tuple[Any, Any]], *, before: dict[str, tuple[Any, Any]] | None = None
) -> type[pa.DataFrameModel]:
    """A model keyed by (symbol, hourly ts) whose columns come from the catalogues, built at import time.

    ``columns`` maps a column name to its (annotation, Field); ``symbol`` and ``ts`` come first.
    """
    fields = {"symbol": (Series[str], _symbol()), "ts": (Series[pd.DatetimeTZDtype], _bar_ts()), **columns}
    namespace: dict[str, Any] = {
        "__doc__": doc,
        "__module__": __name__,
        "__qualname__": name,
        "__annotations__": {column: annotation for column, (annotation, _) in fields.items()},
        **{column: field for column, (_, field) in fields.items()},
        "Config": type("Config", (), {"unique": ("symbol", "ts")}),
        "_ts_on_the_hour": pa.check("ts", **_HOURLY)(_ts_on_the_hour),
    }
    return type(name, (_WarehouseModel,), namespace)


def _feature_columns(specs: tuple[FeatureSpec, ...], *, in_training_set: bool) -> dict[str, tuple[Any, Any]]:
    """Feature columns: nullable as the catalogue says (window filling, gap, no coverage), never in training."""
    return {
        s.name: (Series[float], _catalogue_field(s, s.formula, nullable=s.nullable and not in_training_set))
        for s in specs
    }


def _provenance_columns(*, in_training_set: bool) -> dict[str, tuple[Any, Any]]:
    return {
        s.name: (
            Series[np.int64] if s.integer else Series[float],
            _catalogue_field(
                s, s.definition, nullable=s.nullable and not in_training_set, **(_INTEGER if s.integer else {})
            ),
        )
        for s in PROVENANCE_CATALOGUE
    }


class PricesModel(_WarehouseModel):
    """raw.prices: one hourly OHLCV bar per (symbol, ts) from the first price provider that answered."""

    symbol: Series[str] = _symbol()
    ts: Series[pd.DatetimeTZDtype] = _bar_ts()
    open: Series[float] = pa.Field(gt=0, description="open price (quote currency)")
    high: Series[float] = pa.Field(gt=0, description="highest price of the bar")
    low: Series[float] = pa.Field(gt=0, description="lowest price of the bar")
    close: Series[float] = pa.Field(gt=0, description="close price (last trade before ts + 1h)")
    volume: Series[float] = pa.Field(ge=0, description="traded volume in the base asset")
    provider: Series[str] = pa.Field(description="price provider that served the bar, e.g. binance")
    ingested_at: Series[pd.DatetimeTZDtype] | None = pa.Field(**_UTC, description="when the bar was stored, UTC")

    class Config:
        unique = ("symbol", "ts")

    @pa.check("ts", **_HOURLY)
    def _ts_on_the_hour(cls, ts: pd.Series) -> pd.Series:
        return _on_the_hour(ts)


class NewsModel(_WarehouseModel):
    """raw.news: one row per article, de-duplicated across sources by URL."""

    article_id: Series[str] = pa.Field(
        str_length={"min_value": 1}, description="stable id (same across re-fetches and sources for the same URL)"
    )
    published_at: Series[pd.DatetimeTZDtype] = pa.Field(
        **_UTC, description="when the article became known (publication time, or pick-up time for aggregators), UTC"
    )
    source: Series[str] = pa.Field(description="publisher, e.g. CoinTelegraph")
    title: Series[str] = pa.Field(description="headline")
    body: Series[str] = pa.Field(nullable=True, description="summary or body text; may be empty")
    url: Series[str] = pa.Field(nullable=True, description="article URL without utm_* parameters; may be empty")
    provider: Series[str] = pa.Field(description="news provider that served it, e.g. cryptocompare or rss")
    categories: Series[str] | None = pa.Field(nullable=True, description='provider tags joined by "|"; may be empty')
    symbols: Series[str] | None = pa.Field(
        nullable=True, description='universe symbols the article mentions, joined by "|"; may be empty'
    )
    ingested_at: Series[pd.DatetimeTZDtype] | None = pa.Field(**_UTC, description="when the article was stored, UTC")

    class Config:
        unique = ("article_id",)


PRICE_COVERAGE_STATUSES: tuple[str, ...] = ("complete", "partial", "no_data", "failed")
NEWS_COVERAGE_STATUSES: tuple[str, ...] = ("ok", "failed", "skipped")


class PriceCoverageModel(_WarehouseModel):
    """raw.price_coverage: what the price providers answered for each (symbol, UTC day)."""

    symbol: Series[str] = _symbol()
    day: Series[pandas_engine.Date] = pa.Field(description="UTC day (DATE)")
    status: Series[str] = pa.Field(
        isin=list(PRICE_COVERAGE_STATUSES),
        description=(
            "complete: 24 bars, or every closed hour of the day still in progress; partial: fewer; "
            "no_data: every provider answered without error and none had a bar; failed: a provider erred and "
            "none served"
        ),
    )
    bars: Series[np.int64] = pa.Field(ge=0, description="bars stored for the day", **_INTEGER)
    provider: Series[str] = pa.Field(nullable=True, description="who served the day; null when none")
    detail: Series[str] = pa.Field(description="each provider's answer in a few words")

    class Config:
        unique = ("symbol", "day")


class NewsCoverageModel(_WarehouseModel):
    """raw.news_coverage: one row per news provider answer, the time window it covered and how it went."""

    provider: Series[str] = pa.Field(description="news provider, e.g. cryptocompare or rss")
    window_start: Series[pd.DatetimeTZDtype] = pa.Field(
        **_UTC, description="start of what the answer covered, UTC (for RSS: the oldest item)"
    )
    window_end: Series[pd.DatetimeTZDtype] = pa.Field(
        **_UTC, description="end of what the answer covered, UTC (for RSS: the fetch time); after window_start"
    )
    status: Series[str] = pa.Field(
        isin=list(NEWS_COVERAGE_STATUSES), description="ok, failed or skipped (e.g. no API key)"
    )
    articles: Series[np.int64] = pa.Field(ge=0, description="articles the answer held", **_INTEGER)
    fetched_at: Series[pd.DatetimeTZDtype] = pa.Field(**_UTC, description="when the provider was asked, UTC")
    detail: Series[str] = pa.Field(description="the answer in a few words (the error of a failed one)")

    class Config:
        unique = ("provider", "window_start")

    @pa.dataframe_check(name="window_end_after_start", description="window_end > window_start")
    def _window_end_after_start(cls, df: pd.DataFrame) -> pd.Series:
        return df["window_end"] > df["window_start"]


class ArticleSentimentModel(_WarehouseModel):
    """features.article_sentiment: one score per (article, tagged symbol, sentiment model)."""

    article_id: Series[str] = pa.Field(description="raw.news article_id")
    symbol: Series[str] = _symbol("universe symbol the article is tagged with")
    published_at: Series[pd.DatetimeTZDtype] = pa.Field(**_UTC, description="the article's published_at, UTC")
    model: Series[str] = pa.Field(description="sentiment model, e.g. vader")
    compound: Series[float] = pa.Field(ge=-1, le=1, description="compound sentiment, -1 (negative) .. 1 (positive)")

    class Config:
        unique = ("article_id", "symbol", "model")


class TechnicalIndicatorsModel(_WarehouseModel):
    """features.technical_indicators: the indicator values features 1-5 come from; null while a window fills."""

    symbol: Series[str] = _symbol()
    ts: Series[pd.DatetimeTZDtype] = _bar_ts()
    rsi_14: Series[float] = pa.Field(nullable=True, ge=0, le=100, description="RSI(14) of close, 0..100")
    macd: Series[float] = pa.Field(nullable=True, description="MACD line: EMA12 - EMA26 of close")
    macd_signal: Series[float] = pa.Field(nullable=True, description="EMA9 of the MACD line")
    macd_hist: Series[float] = pa.Field(nullable=True, description="MACD line - signal")
    bb_high: Series[float] = pa.Field(nullable=True, description="Bollinger(20, 2) upper band")
    bb_mid: Series[float] = pa.Field(nullable=True, description="Bollinger(20, 2) middle band (SMA20)")
    bb_low: Series[float] = pa.Field(nullable=True, description="Bollinger(20, 2) lower band")
    bb_pct_b: Series[float] = pa.Field(
        nullable=True, description="Bollinger %B; finite when present (null where the bands have no width)"
    )
    atr_14: Series[float] = pa.Field(nullable=True, ge=0, description="ATR(14); null for the first 14 bars")
    ema_12: Series[float] = pa.Field(nullable=True, gt=0, description="EMA12 of close")
    ema_26: Series[float] = pa.Field(nullable=True, gt=0, description="EMA26 of close")
    vwap_24: Series[float] = pa.Field(nullable=True, gt=0, description="VWAP over the last 24 bars")

    class Config:
        unique = ("symbol", "ts")

    @pa.check("ts", **_HOURLY)
    def _ts_on_the_hour(cls, ts: pd.Series) -> pd.Series:
        return _on_the_hour(ts)


_SENTIMENT_SPECS = tuple(spec for spec in FEATURE_CATALOGUE if spec.name in SENTIMENT_FEATURES)
_NEWS_COVERAGE = next(spec for spec in PROVENANCE_CATALOGUE if spec.name == "news_coverage_24h")

SentimentHourlyModel = _bar_table_model(
    "SentimentHourlyModel",
    "features.sentiment_hourly: features 12-14 per (symbol, hourly bar), null where no news provider looked.",
    {
        **_feature_columns(_SENTIMENT_SPECS, in_training_set=False),
        "news_count_24h": (Series[np.int64], pa.Field(ge=0, description="n: articles in [ts - 23h, ts + 1h)")),
        "news_coverage_24h": (
            Series[float],
            _catalogue_field(_NEWS_COVERAGE, _NEWS_COVERAGE.definition, nullable=False),
        ),
    },
)

FeatureVectorsModel = _bar_table_model(
    "FeatureVectorsModel",
    "features.feature_vectors: the 16 features of features.md per (symbol, bar) and the provenance columns; "
    "a feature is null while its window fills, across a gap, or without news coverage.",
    {**_feature_columns(FEATURE_CATALOGUE, in_training_set=False), **_provenance_columns(in_training_set=False)},
)

TrainingSetModel = _bar_table_model(
    "TrainingSetModel",
    "ml.training_set: complete rows only (16 features and both labels non-null), split by time.",
    {
        **_feature_columns(FEATURE_CATALOGUE, in_training_set=True),
        **_provenance_columns(in_training_set=True),
        "target_log_return_1h": (
            Series[float],
            pa.Field(description="label: ln(close_t+1 / close_t), the next bar's return"),
        ),
        "target_up_1h": (Series[bool], pa.Field(description="label: target_log_return_1h > 0")),
        "split": (
            Series[str],
            pa.Field(isin=list(SPLITS), description="train / valid / test, by time with 24-bar purges"),
        ),
    },
)


class PartitionScoresModel(_WarehouseModel):
    """quality.partition_scores: the price quality score of each daily partition, per symbol and overall.

    Scores are 0-100; ``transforms.quality.quality_score`` documents the formula.
    """

    partition_key: Series[str] = pa.Field(
        str_matches=r"^\d{4}-\d{2}-\d{2}$", description="daily partition key (UTC day, YYYY-MM-DD)"
    )
    partition_start: Series[pd.DatetimeTZDtype] = pa.Field(**_UTC, description="start of the partition's UTC day")
    symbol: Series[str] = pa.Field(
        str_matches=r"^([A-Z0-9]{2,15}|\*)$", description='universe symbol, or "*" for the whole universe'
    )
    bars_expected: Series[np.int64] = pa.Field(ge=0, description="hourly bars expected (closed by computed_at)")
    bars_present: Series[np.int64] = pa.Field(ge=0, description="expected bars that exist")
    bars_received: Series[np.int64] = pa.Field(ge=0, description="rows in the partition, duplicates included")
    bars_consistent: Series[np.int64] = pa.Field(ge=0, description="rows passing the OHLC rule and not duplicated")
    bars_sampled: Series[np.int64] = pa.Field(ge=0, description="bars compared with a second provider")
    bars_accurate: Series[np.int64] = pa.Field(ge=0, description="sampled bars within the accuracy tolerance")
    completeness_score: Series[float] = pa.Field(ge=0, le=100, description="100 * bars_present / bars_expected")
    consistency_score: Series[float] = pa.Field(ge=0, le=100, description="100 * bars_consistent / bars_received")
    accuracy_score: Series[float] = pa.Field(
        nullable=True, ge=0, le=100, description="100 * bars_accurate / bars_sampled; null when nothing was sampled"
    )
    overall_score: Series[float] = pa.Field(
        ge=0, le=100, description="0.5 completeness + 0.3 consistency + 0.2 accuracy (reweighted without accuracy)"
    )
    computed_at: Series[pd.DatetimeTZDtype] = pa.Field(**_UTC, description="when the score was computed, UTC")

    class Config:
        unique = ("partition_key", "symbol")

    @pa.check("partition_start", **_HOURLY)
    def _start_on_the_hour(cls, ts: pd.Series) -> pd.Series:
        return _on_the_hour(ts)


TABLE_MODELS: dict[str, type[pa.DataFrameModel]] = {
    "raw.prices": PricesModel,
    "raw.news": NewsModel,
    "raw.price_coverage": PriceCoverageModel,
    "raw.news_coverage": NewsCoverageModel,
    "features.article_sentiment": ArticleSentimentModel,
    "features.technical_indicators": TechnicalIndicatorsModel,
    "features.sentiment_hourly": SentimentHourlyModel,
    "features.feature_vectors": FeatureVectorsModel,
    "ml.training_set": TrainingSetModel,
    "quality.partition_scores": PartitionScoresModel,
}


class SchemaViolation(ValueError):
    """A frame broke its table's schema. ``failure_cases`` holds pandera's full failure table."""

    def __init__(self, table: str, failure_cases: pd.DataFrame, *, shown: int = 10, positional: bool = False) -> None:
        self.table = table
        self.failure_cases = failure_cases
        super().__init__(_violation_message(table, failure_cases, shown, positional))


def _violation_message(table: str, failure_cases: pd.DataFrame, shown: int, positional: bool) -> str:
    cases = failure_cases.reset_index(drop=True).astype(object)
    n = len(cases)
    cols = [c for c in ("column", "check", "index", "failure_case") if c in cases.columns]
    if "failure_case" in cases:  # a null value is the failure itself (not_nullable): show it
        cases["failure_case"] = cases["failure_case"].map(lambda v: "null" if _is_null(v) else v)
    cases = cases.where(cases.notna(), "-")
    head = cases.loc[: shown - 1, cols].map(lambda v: s if len(s := str(v)) <= 60 else s[:57] + "...")
    lines = [f"{table}: {n} schema failure case{'s' if n != 1 else ''}"]
    if {"column", "check"} <= set(cases):
        counts = cases.groupby(["column", "check"], sort=False).size()
        lines.append("by column/check: " + "; ".join(f"{col} {chk}: {k}" for (col, chk), k in counts.items()))
    more = f" (first {shown} of {n})" if n > shown else ""
    where = " (index = row position: the frame's index has duplicate labels)" if positional else ""
    lines.append(f"failure cases{more}{where}:")
    lines.append(head.to_string(index=False))
    return "\n".join(lines)


def _is_null(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def model_for(table: str) -> type[pa.DataFrameModel]:
    try:
        return TABLE_MODELS[table]
    except KeyError:
        raise ValueError(f"unknown warehouse table {table!r}; known: {', '.join(TABLE_MODELS)}") from None


def _is_utc(tz: Any) -> bool:
    return tz is dt.UTC or str(tz) in _UTC_ALIASES


def _normalise_utc(df: pd.DataFrame, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """Bring tz-aware UTC timestamps of another unit or UTC alias (DuckDB returns ``datetime64[us, Etc/UTC]``)
    to ``datetime64[ns, UTC]``; naive or non-UTC columns are left alone so that validation rejects them."""
    out = df
    for name, column in model.to_schema().columns.items():
        if name not in df.columns or not isinstance(column.dtype.type, pd.DatetimeTZDtype):
            continue
        dtype = df[name].dtype
        if isinstance(dtype, pd.DatetimeTZDtype) and _is_utc(dtype.tz) and dtype != column.dtype.type:
            if out is df:
                out = df.copy()
            out[name] = df[name].dt.tz_convert("UTC").dt.as_unit("ns")
    return out


def _widen_integers(df: pd.DataFrame, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """Bring narrower integer columns (DuckDB returns INTEGER as ``int32``) to the model's integer dtype."""
    out = df
    for name, column in model.to_schema().columns.items():
        if name not in df.columns or not isinstance(column.dtype.type, np.dtype) or column.dtype.type.kind != "i":
            continue
        dtype = df[name].dtype
        if isinstance(dtype, np.dtype) and dtype.kind == "i" and dtype.itemsize < column.dtype.type.itemsize:
            if out is df:
                out = df.copy()
            out[name] = df[name].astype(column.dtype.type)
    return out


def _normalise_dates(df: pd.DataFrame, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """Bring DATE columns held as timestamps at midnight (DuckDB returns DATE as naive ``datetime64[us]``; a
    UTC ``Timestamp.floor("D")`` is one too) to ``datetime.date`` values; other timestamps are left alone so
    that validation rejects them."""
    out = df
    for name, column in model.to_schema().columns.items():
        if name not in df.columns or not isinstance(column.dtype, pandas_engine.Date):
            continue
        values = df[name]
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            continue
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            if not _is_utc(values.dtype.tz):
                continue
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        if not (values.dropna() == values.dropna().dt.normalize()).all():
            continue
        if out is df:
            out = df.copy()
        out[name] = pd.Series(values.dt.date.to_numpy(dtype=object), index=df.index).where(values.notna(), None)
    return out


def with_dates(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (columns of ``table``, e.g. as read from DuckDB) with ``table``'s DATE columns as ``datetime.date``."""
    return _normalise_dates(df, model_for(table))


def validate_frame(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Validate ``df`` against ``table``'s model, collecting every failure (lazy) before raising.

    Returns the validated frame (UTC timestamps normalised to ``datetime64[ns, UTC]``, DATE columns to
    ``datetime.date``, narrower integers widened to the model's); raises
    ``SchemaViolation`` naming the table with a readable table of the first failure cases.
    """
    model = model_for(table)
    frame = _widen_integers(_normalise_dates(_normalise_utc(df, model), model), model)
    # pandera cannot report uniqueness failures on a frame whose index has duplicate labels.
    positional = not frame.index.is_unique
    if positional:
        frame = frame.reset_index(drop=True)
    try:
        out = model.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        raise SchemaViolation(table, exc.failure_cases, positional=positional) from exc
    if positional:
        out.index = df.index
    return out


def grain(table: str) -> list[str]:
    """The table's unique key (its primary key in DuckDB)."""
    unique = model_for(table).to_schema().unique
    return [unique] if isinstance(unique, str) else list(unique or [])


def column_names(table: str) -> list[str]:
    """The table's columns in warehouse order (optional ones included)."""
    return list(model_for(table).to_schema().columns)


def _sql_type(column: pa.Column) -> str:
    if column.metadata and "duckdb_type" in column.metadata:
        return column.metadata["duckdb_type"]
    if isinstance(column.dtype, pandas_engine.Date):
        return "DATE"
    dtype = column.dtype.type
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    kind = np.dtype(dtype).kind
    sql = {"f": "DOUBLE", "b": "BOOLEAN", "i": "BIGINT", "u": "UBIGINT", "U": "VARCHAR", "O": "VARCHAR"}.get(kind)
    if sql is None:
        raise TypeError(f"no DuckDB type for pandera dtype {dtype!r} of column {column.name!r}")
    return sql


def _db_nullable(column: pa.Column) -> bool:
    """Nullable in the database: declared nullable, or optional (a writer may leave it out)."""
    return bool(column.nullable or not column.required)


def _fmt(value: Any) -> str:
    return f"{value:.12g}" if isinstance(value, float) else str(value)


def _describe_check(check: pa.Check) -> str:
    stats = check.statistics or {}
    simple = {
        "greater_than": ">",
        "greater_than_or_equal_to": ">=",
        "less_than": "<",
        "less_than_or_equal_to": "<=",
        "equal_to": "==",
        "not_equal_to": "!=",
    }
    if check.name in simple:
        value = next(iter(stats.values()), None)
        return f"{simple[check.name]} {_fmt(value)}"
    if check.name == "in_range":
        return f"in [{_fmt(stats['min_value'])}, {_fmt(stats['max_value'])}]"
    if check.name == "isin":
        return "one of " + ", ".join(map(str, stats["allowed_values"]))
    if check.name == "str_matches":
        return f"matches {stats.get('pattern', '')}"
    if check.name == "finite":
        return "finite when present (no +/-inf)"
    if check.name == "str_length":
        return f"length >= {stats.get('min_value')}"
    return check.description or check.name or "custom check"


def dagster_table_schema(table: str) -> dg.TableSchema:
    """The Dagster column schema (names, DuckDB types, descriptions, constraints) of ``table``."""
    schema = model_for(table).to_schema()
    key = grain(table)
    columns = []
    for name, column in schema.columns.items():
        sql_type = _sql_type(column)
        other = [
            _describe_check(check) for check in column.checks if not (check.name == "finite" and sql_type != "DOUBLE")
        ]
        if not column.required:
            other.append("optional")
        columns.append(
            dg.TableColumn(
                name=name,
                type=sql_type,
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=_db_nullable(column), unique=key == [name], other=other),
            )
        )
    # Rules across a row's columns (e.g. window_end > window_start) are the model's dataframe checks.
    table_rules = [check.description or check.name for check in schema.checks]
    return dg.TableSchema(
        columns=columns, constraints=dg.TableConstraints(other=[f"primary key ({', '.join(key)})", *table_rules])
    )


def column_types(table: str) -> dict[str, str]:
    """The table's DuckDB column types by name, in warehouse order."""
    return {name: _sql_type(column) for name, column in model_for(table).to_schema().columns.items()}


def duckdb_ddl(table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``table`` with DuckDB types and its grain as PRIMARY KEY.

    The schema (``raw`` in ``raw.prices``) must exist already.
    """
    schema = model_for(table).to_schema()
    lines = []
    for name, column in schema.columns.items():
        null = "" if _db_nullable(column) else " NOT NULL"
        lines.append(f"    {name} {_sql_type(column)}{null}")
    lines.append(f"    PRIMARY KEY ({', '.join(grain(table))})")
    body = ",\n".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n{body}\n)"
