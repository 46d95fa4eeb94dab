"""The warehouse table models, validate_frame, and the Dagster schema / DuckDB DDL generated from them.

Valid frames are built from real bundled bars and news (fixtures/quality_samples.README.md); bad ones are
those frames with one crafted defect each. Nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from crypto_assets import schemas
from crypto_assets.schemas import (
    FEATURE_COLUMNS,
    TABLE_MODELS,
    SchemaViolation,
    dagster_table_schema,
    duckdb_ddl,
    validate_frame,
)
from crypto_assets_tests import _quality_data as data

BUILDERS: dict[str, Callable[[], pd.DataFrame]] = {
    "raw.prices": lambda: data.real_prices(ingested=True),
    "raw.news": data.real_news,
    "raw.price_coverage": data.price_coverage,
    "raw.news_coverage": data.news_coverage,
    "features.article_sentiment": data.article_sentiment,
    "features.technical_indicators": data.technical_indicators,
    "features.sentiment_hourly": data.sentiment_hourly,
    "features.feature_vectors": data.feature_vectors,
    "ml.training_set": data.training_set,
    "quality.partition_scores": data.partition_scores,
}

# features.md "Gaps, venues and news coverage": the provenance columns, in warehouse.md's order.
PROVENANCE = ["gap_hours_24h", "venues_24h", "news_coverage_24h"]

# features.md, in order.
FEATURES_MD = [
    "rsi_14",
    "macd_hist_norm",
    "bb_pct_b",
    "atr_14_pct",
    "ema_ratio_12_26",
    "log_return_1h",
    "realized_vol_24h",
    "volume_zscore_24h",
    "vwap_dev_24h",
    "btc_corr_24h",
    "btc_rel_strength_24h",
    "sentiment_mean_24h",
    "news_volume_24h",
    "sentiment_momentum_6h",
    "hour_sin",
    "hour_cos",
]


def _violation(table: str, frame: pd.DataFrame) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as info:
        validate_frame(table, frame)
    return info.value


def _checks(exc: SchemaViolation) -> set[tuple[str, str]]:
    return set(zip(exc.failure_cases["column"].astype(str), exc.failure_cases["check"].astype(str), strict=True))


def test_every_table_has_a_model_and_the_contract_columns() -> None:
    assert set(TABLE_MODELS) == {
        "raw.prices",
        "raw.news",
        "raw.price_coverage",
        "raw.news_coverage",
        "features.article_sentiment",
        "features.technical_indicators",
        "features.sentiment_hourly",
        "features.feature_vectors",
        "ml.training_set",
        "quality.partition_scores",
    }
    assert list(FEATURE_COLUMNS) == FEATURES_MD
    cols = schemas.column_names
    assert cols("raw.prices") == ["symbol", "ts", "open", "high", "low", "close", "volume", "provider", "ingested_at"]
    assert cols("raw.news")[:7] == ["article_id", "published_at", "source", "title", "body", "url", "provider"]
    assert {"categories", "ingested_at"} <= set(cols("raw.news"))
    assert cols("features.article_sentiment") == ["article_id", "symbol", "published_at", "model", "compound"]
    assert cols("features.technical_indicators") == [
        "symbol", "ts", "rsi_14", "macd", "macd_signal", "macd_hist", "bb_high", "bb_mid", "bb_low",
        "bb_pct_b", "atr_14", "ema_12", "ema_26", "vwap_24",
    ]  # fmt: skip
    assert cols("features.sentiment_hourly") == [
        "symbol", "ts", "sentiment_mean_24h", "news_volume_24h", "sentiment_momentum_6h", "news_count_24h",
        "news_coverage_24h",
    ]  # fmt: skip
    assert cols("features.feature_vectors") == ["symbol", "ts", *FEATURES_MD, *PROVENANCE]
    assert cols("ml.training_set") == [
        "symbol", "ts", *FEATURES_MD, *PROVENANCE, "target_log_return_1h", "target_up_1h", "split",
    ]  # fmt: skip
    assert cols("raw.price_coverage") == ["symbol", "day", "status", "bars", "provider", "detail"]
    assert cols("raw.news_coverage") == [
        "provider", "window_start", "window_end", "status", "articles", "fetched_at", "detail",
    ]  # fmt: skip
    assert list(TABLE_MODELS)[:4] == ["raw.prices", "raw.news", "raw.price_coverage", "raw.news_coverage"]
    assert schemas.grain("raw.prices") == ["symbol", "ts"]
    assert schemas.grain("raw.price_coverage") == ["symbol", "day"]
    assert schemas.grain("raw.news_coverage") == ["provider", "window_start"]
    assert schemas.grain("raw.news") == ["article_id"]
    assert schemas.grain("features.article_sentiment") == ["article_id", "symbol", "model"]


@pytest.mark.parametrize("table", list(BUILDERS))
def test_models_accept_real_shaped_frames(table: str) -> None:
    frame = BUILDERS[table]()
    assert len(frame) > 0
    out = validate_frame(table, frame)
    pd.testing.assert_frame_equal(out, frame)


def test_extra_columns_are_allowed_and_optional_columns_may_be_absent() -> None:
    prices = data.real_prices()  # no ingested_at
    validate_frame("raw.prices", prices.assign(vwap_extra=1.0))
    news = data.real_news().drop(columns=["categories"])
    validate_frame("raw.news", news)


def test_feature_vectors_allow_warmup_nulls_but_training_set_does_not() -> None:
    features = data.feature_vectors()
    assert features["rsi_14"].isna().any()  # real warm-up nulls
    validate_frame("features.feature_vectors", features)
    training = data.training_set()
    training.loc[training.index[3], "macd_hist_norm"] = np.nan
    exc = _violation("ml.training_set", training)
    assert ("macd_hist_norm", "not_nullable") in _checks(exc)


def _prices_with(**changes: object) -> pd.DataFrame:
    prices = data.real_prices(ingested=True)
    for column, value in changes.items():
        prices.loc[prices.index[5], column] = value
    return prices


@pytest.mark.parametrize(
    ("frame_builder", "column", "check"),
    [
        (lambda: _prices_with(volume=-1.0), "volume", "greater_than_or_equal_to(0)"),
        (lambda: _prices_with(close=0.0), "close", "greater_than(0)"),
        (lambda: _prices_with(close=np.nan), "close", "not_nullable"),
        (lambda: _prices_with(high=np.inf), "high", "finite"),
        (lambda: _prices_with(symbol="btc"), "symbol", "str_matches('^[A-Z0-9]{2,15}$')"),
        (
            lambda: _prices_with(ts=pd.Timestamp("2022-05-04 05:30", tz="UTC")),
            "ts",
            "on_the_hour",
        ),
    ],
    ids=["negative-volume", "zero-close", "nan-close", "inf-high", "lowercase-symbol", "ts-off-the-hour"],
)
def test_prices_model_rejects(frame_builder: Callable[[], pd.DataFrame], column: str, check: str) -> None:
    exc = _violation("raw.prices", frame_builder())
    assert (column, check) in _checks(exc)


def test_prices_reject_naive_and_non_utc_timestamps() -> None:
    prices = data.real_prices(ingested=True)
    naive = prices.assign(ts=prices["ts"].dt.tz_localize(None))
    exc = _violation("raw.prices", naive)
    assert exc.failure_cases.loc[exc.failure_cases["column"] == "ts", "failure_case"].tolist() == ["datetime64[ns]"]
    berlin = prices.assign(ts=prices["ts"].dt.tz_convert("Europe/Berlin"))
    assert "ts" in set(_violation("raw.prices", berlin).failure_cases["column"])
    naive_ingest = prices.assign(ingested_at=prices["ingested_at"].dt.tz_localize(None))
    assert "ingested_at" in set(_violation("raw.prices", naive_ingest).failure_cases["column"])


def test_duplicate_keys_are_rejected() -> None:
    prices = data.real_prices()
    dup = pd.concat([prices, prices.iloc[[10]]], ignore_index=True)
    exc = _violation("raw.prices", dup)
    assert set(exc.failure_cases["check"]) == {"multiple_fields_uniqueness"}

    news = data.real_news()
    news.loc[1, "article_id"] = news.loc[0, "article_id"]
    assert "article_id" in set(_violation("raw.news", news).failure_cases["column"])

    sentiment = data.article_sentiment()
    validate_frame(
        "features.article_sentiment", sentiment.assign(model="finbert").pipe(lambda f: pd.concat([sentiment, f]))
    )
    # concat keeps index labels, so label 0 appears twice: failures are then reported by row position.
    exc = _violation("features.article_sentiment", pd.concat([sentiment, sentiment.iloc[[0]]]))
    assert set(exc.failure_cases["index"]) == {0, len(sentiment)}
    assert "index = row position" in str(exc)


@pytest.mark.parametrize(
    ("table", "column", "value", "check"),
    [
        ("features.technical_indicators", "rsi_14", 101.0, "less_than_or_equal_to(100)"),
        ("features.feature_vectors", "rsi_14", 101.0, "less_than_or_equal_to(100)"),
        ("features.article_sentiment", "compound", 1.5, "less_than_or_equal_to(1)"),
        ("features.feature_vectors", "bb_pct_b", np.inf, "finite"),
        ("features.technical_indicators", "bb_pct_b", -np.inf, "finite"),
        ("features.feature_vectors", "hour_sin", 1.5, "less_than_or_equal_to(1)"),
        ("features.feature_vectors", "btc_corr_24h", 1.0 + 1e-6, "less_than_or_equal_to(1.000000001)"),
        ("features.feature_vectors", "hour_cos", np.nan, "not_nullable"),
        ("features.sentiment_hourly", "sentiment_mean_24h", -1.2, "greater_than_or_equal_to(-1)"),
        ("ml.training_set", "split", "holdout", "isin(['train', 'valid', 'test'])"),
        ("raw.news", "title", None, "not_nullable"),
    ],
)
def test_feature_and_news_models_reject(table: str, column: str, value: object, check: str) -> None:
    frame = BUILDERS[table]()
    frame.loc[frame.index[-1], column] = value
    exc = _violation(table, frame)
    assert (column, check) in _checks(exc)


def test_btc_corr_allows_float_excess_below_1e9() -> None:
    features = data.feature_vectors()
    features.loc[features["btc_corr_24h"].notna().idxmax(), "btc_corr_24h"] = 1.0 + 2e-16
    validate_frame("features.feature_vectors", features)


def test_wrong_dtypes_are_rejected() -> None:
    training = data.training_set()
    exc = _violation("ml.training_set", training.assign(target_up_1h=training["target_up_1h"].astype(float)))
    assert ("target_up_1h", "dtype('bool')") in _checks(exc)
    hourly = data.sentiment_hourly()
    exc = _violation("features.sentiment_hourly", hourly.assign(news_count_24h=hourly["news_count_24h"] + 0.5))
    assert "news_count_24h" in set(exc.failure_cases["column"])
    missing = data.real_prices().drop(columns=["volume"])
    exc = _violation("raw.prices", missing)
    assert ("column_in_dataframe", "volume") in {
        (str(c), str(f)) for c, f in zip(exc.failure_cases["check"], exc.failure_cases["failure_case"], strict=True)
    }


def test_validate_frame_normalises_utc_timestamps_of_other_units() -> None:
    """A scalar Timestamp assigned to a column gives datetime64[s, UTC] in pandas 2: still UTC, so accepted."""
    prices = data.real_prices()
    prices["ingested_at"] = pd.Timestamp("2022-05-14 00:05", tz="UTC")
    assert str(prices["ingested_at"].dtype) == "datetime64[s, UTC]"
    out = validate_frame("raw.prices", prices)
    assert str(out["ingested_at"].dtype) == "datetime64[ns, UTC]"
    assert str(prices["ingested_at"].dtype) == "datetime64[s, UTC]"  # the caller's frame is not modified


def test_validate_frame_accepts_frames_read_back_from_duckdb() -> None:
    """DuckDB returns TIMESTAMPTZ as datetime64[us, Etc/UTC]; validate_frame brings it to ns UTC."""
    prices = data.real_prices(ingested=True)
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA raw")
    conn.execute(duckdb_ddl("raw.prices"))
    conn.register("incoming", prices)
    conn.execute("INSERT INTO raw.prices BY NAME SELECT * FROM incoming")
    back = conn.execute("SELECT * FROM raw.prices ORDER BY symbol, ts").df()
    assert str(back["ts"].dtype) != "datetime64[ns, UTC]"
    out = validate_frame("raw.prices", back)
    assert str(out["ts"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(out, prices, check_dtype=False)
    assert (out["ts"] == prices["ts"]).all()


def test_schema_violation_message_is_readable() -> None:
    prices = data.real_prices(ingested=True)
    prices.loc[0:11, "volume"] = -5.0  # 12 failures
    prices.loc[20, "ts"] = pd.Timestamp("2022-05-04 20:15", tz="UTC")
    exc = _violation("raw.prices", prices)
    assert isinstance(exc, ValueError)
    message = str(exc)
    lines = message.splitlines()
    assert lines[0] == "raw.prices: 13 schema failure cases"
    assert "volume greater_than_or_equal_to(0): 12" in lines[1]
    assert "ts on_the_hour: 1" in lines[1]
    assert "(first 10 of 13)" in message
    assert lines[3].split() == ["column", "check", "index", "failure_case"]
    assert len(lines) == 4 + 10
    assert sum("-5.0" in line for line in lines[4:]) == 9
    assert any("2022-05-04 20:15:00+00:00" in line for line in lines[4:])
    assert exc.table == "raw.prices"
    assert isinstance(exc.failure_cases, pd.DataFrame)
    assert len(exc.failure_cases) == 13
    assert exc.failure_cases["index"].tolist().count(20) == 1


def test_unknown_table_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown warehouse table 'raw\.price'.*raw\.prices"):
        validate_frame("raw.price", data.real_prices())


@pytest.mark.parametrize("table", list(TABLE_MODELS))
def test_dagster_table_schema_matches_model(table: str) -> None:
    table_schema = dagster_table_schema(table)
    assert isinstance(table_schema, dg.TableSchema)
    model_schema = TABLE_MODELS[table].to_schema()
    assert [c.name for c in table_schema.columns] == list(model_schema.columns)
    key = schemas.grain(table)
    for col in table_schema.columns:
        pa_col = model_schema.columns[col.name]
        assert col.type in {"TIMESTAMPTZ", "DATE", "DOUBLE", "VARCHAR", "BOOLEAN", "BIGINT", "INTEGER"}
        assert col.description, f"{table}.{col.name} has no description"
        assert col.constraints.nullable == (pa_col.nullable or not pa_col.required)
        assert col.constraints.unique == (key == [col.name])
    rules = [check.description for check in model_schema.checks]
    assert table_schema.constraints.other == [f"primary key ({', '.join(key)})", *rules]


def test_dagster_table_schema_types_and_constraints() -> None:
    by_name = {c.name: c for c in dagster_table_schema("ml.training_set").columns}
    assert by_name["ts"].type == "TIMESTAMPTZ"
    assert by_name["rsi_14"].type == "DOUBLE"
    assert by_name["split"].type == "VARCHAR"
    assert by_name["target_up_1h"].type == "BOOLEAN"
    assert by_name["rsi_14"].constraints.other == [">= 0", "<= 100", "finite when present (no +/-inf)"]
    assert by_name["split"].constraints.other == ["one of train, valid, test"]
    assert not by_name["rsi_14"].constraints.nullable
    assert "on the hour" in by_name["ts"].constraints.other[0]
    hourly = {c.name: c for c in dagster_table_schema("features.sentiment_hourly").columns}
    assert hourly["news_count_24h"].type == "BIGINT"
    features = {c.name: c for c in dagster_table_schema("features.feature_vectors").columns}
    assert features["rsi_14"].constraints.nullable
    assert features["btc_corr_24h"].constraints.other[:2] == [">= -1.000000001", "<= 1.000000001"]
    news = {c.name: c for c in dagster_table_schema("raw.news").columns}
    assert news["article_id"].constraints.unique
    assert "optional" in news["ingested_at"].constraints.other
    days = {c.name: c for c in dagster_table_schema("raw.price_coverage").columns}
    assert days["day"].type == "DATE" and not days["day"].constraints.nullable
    assert days["status"].constraints.other == ["one of complete, partial, no_data, failed"]
    assert days["bars"].type == "INTEGER" and days["bars"].constraints.other == [">= 0"]
    assert days["provider"].constraints.nullable and not days["detail"].constraints.nullable
    answers = dagster_table_schema("raw.news_coverage")
    assert answers.constraints.other == ["primary key (provider, window_start)", "window_end > window_start"]
    by_answer = {c.name: c for c in answers.columns}
    assert [by_answer[c].type for c in ("window_start", "window_end", "fetched_at")] == ["TIMESTAMPTZ"] * 3
    assert by_answer["status"].constraints.other == ["one of ok, failed, skipped"]
    assert by_answer["articles"].type == "INTEGER"
    assert all(c.description for c in answers.columns)


@pytest.mark.parametrize("table", list(TABLE_MODELS))
def test_duckdb_ddl_creates_the_model_table(table: str) -> None:
    conn = duckdb.connect()
    schema_name = table.split(".")[0]
    conn.execute(f"CREATE SCHEMA {schema_name}")
    ddl = duckdb_ddl(table)
    assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS {table} (")
    conn.execute(ddl)
    conn.execute(ddl)  # idempotent
    described = conn.execute(f"DESCRIBE {table}").fetchall()
    expected = {c.name: c for c in dagster_table_schema(table).columns}
    assert [row[0] for row in described] == list(expected)
    for name, col_type, null, key, *_ in described:
        assert col_type.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ") == expected[name].type
        assert (null == "YES") == expected[name].constraints.nullable
        assert (key == "PRI") == (name in schemas.grain(table))
    frame = BUILDERS[table]()
    conn.register("incoming", frame)
    conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == len(frame)
    with pytest.raises(duckdb.ConstraintException):
        conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming LIMIT 1")


def test_duckdb_ddl_enforces_not_null() -> None:
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA raw")
    conn.execute(duckdb_ddl("raw.prices"))
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        conn.execute(
            "INSERT INTO raw.prices (symbol, ts, open, high, low, close, volume, provider) "
            "VALUES ('BTC', TIMESTAMPTZ '2022-05-04 00:00:00+00', 1, 2, 1, NULL, 5, 'binance')"
        )


# --- raw.price_coverage and raw.news_coverage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "value", "check"),
    [
        ("raw.price_coverage", "status", "ok", "isin(['complete', 'partial', 'no_data', 'failed'])"),
        ("raw.price_coverage", "bars", -1, "greater_than_or_equal_to(0)"),
        ("raw.price_coverage", "symbol", "btc", "str_matches('^[A-Z0-9]{2,15}$')"),
        ("raw.price_coverage", "detail", None, "not_nullable"),
        ("raw.news_coverage", "status", "complete", "isin(['ok', 'failed', 'skipped'])"),
        ("raw.news_coverage", "articles", -3, "greater_than_or_equal_to(0)"),
        ("raw.news_coverage", "provider", None, "not_nullable"),
    ],
)
def test_coverage_models_reject(table: str, column: str, value: object, check: str) -> None:
    frame = BUILDERS[table]()
    frame.loc[frame.index[-1], column] = value
    assert (column, check) in _checks(_violation(table, frame))


def test_price_coverage_day_is_a_date_and_provider_may_be_null() -> None:
    days = data.price_coverage()
    failed = days.iloc[[0]].assign(day=dt.date(2022, 5, 14), status="failed", bars=0, provider=None)
    failed["detail"] = "binance: HTTP 451; coinbase: timeout"
    validate_frame("raw.price_coverage", pd.concat([days, failed], ignore_index=True))
    # a timestamp at midnight (naive, as DuckDB returns DATE, or UTC) is the day; any other time is not a day
    as_ts = days.assign(day=pd.to_datetime(days["day"]))
    out = validate_frame("raw.price_coverage", as_ts)
    assert out["day"].tolist() == days["day"].tolist() and isinstance(out["day"].iloc[0], dt.date)
    validate_frame("raw.price_coverage", days.assign(day=pd.to_datetime(days["day"]).dt.tz_localize("UTC")))
    noon = as_ts.assign(day=as_ts["day"] + pd.Timedelta(hours=12))
    assert "day" in set(_violation("raw.price_coverage", noon).failure_cases["column"])
    dup = pd.concat([days, days.iloc[[3]]], ignore_index=True)
    assert set(_violation("raw.price_coverage", dup).failure_cases["check"]) == {"multiple_fields_uniqueness"}


def test_news_coverage_window_must_end_after_it_starts() -> None:
    answers = data.news_coverage()
    answers.loc[1, "window_end"] = answers.loc[1, "window_start"]
    exc = _violation("raw.news_coverage", answers)
    assert set(exc.failure_cases["check"]) == {"window_end_after_start"}
    naive = data.news_coverage().assign(window_start=lambda f: f["window_start"].dt.tz_localize(None))
    assert "window_start" in set(_violation("raw.news_coverage", naive).failure_cases["column"])


def test_coverage_tables_round_trip_through_duckdb() -> None:
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA raw")
    for table in ("raw.price_coverage", "raw.news_coverage"):
        conn.execute(duckdb_ddl(table))
        frame = BUILDERS[table]()
        conn.register("incoming", frame)
        conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
        conn.unregister("incoming")
        back = conn.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
        out = validate_frame(table, back)
        expected = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
        pd.testing.assert_frame_equal(out, expected, check_dtype=False)
    assert conn.execute("SELECT typeof(day) FROM raw.price_coverage LIMIT 1").fetchone()[0] == "DATE"
    assert conn.execute("SELECT typeof(bars) FROM raw.price_coverage LIMIT 1").fetchone()[0] == "INTEGER"


# --- the feature catalogue drives the feature columns ------------------------------------------------------------


def test_feature_columns_come_from_the_catalogue() -> None:
    """Names, order, descriptions, bounds and nullability of the 16 features: FEATURE_CATALOGUE's, in every table."""
    from crypto_assets.transforms.features import FEATURE_CATALOGUE, PROVENANCE_CATALOGUE

    tables = {
        "features.sentiment_hourly": [s for s in FEATURE_CATALOGUE if s.group == "sentiment"],
        "features.feature_vectors": list(FEATURE_CATALOGUE),
        "ml.training_set": list(FEATURE_CATALOGUE),
    }
    for table, specs in tables.items():
        columns = TABLE_MODELS[table].to_schema().columns
        assert [c for c in columns if c in FEATURES_MD] == [s.name for s in specs]
        ui = {c.name: c for c in dagster_table_schema(table).columns}
        for spec in specs:
            column = columns[spec.name]
            assert column.description == spec.formula
            assert column.nullable == (spec.nullable and table != "ml.training_set"), (table, spec.name)
            stats = {k: v for check in column.checks for k, v in (check.statistics or {}).items()}
            assert {v for v in stats.values()} == set(spec.bounds().values()), (table, spec.name)
            assert ui[spec.name].type == "DOUBLE"
    for table in ("features.feature_vectors", "ml.training_set"):
        ui = {c.name: c for c in dagster_table_schema(table).columns}
        for spec in PROVENANCE_CATALOGUE:
            assert ui[spec.name].type == ("INTEGER" if spec.integer else "DOUBLE")
            assert ui[spec.name].description == spec.definition
            assert ui[spec.name].constraints.nullable == (spec.nullable and table != "ml.training_set")
    hourly = {c.name: c for c in dagster_table_schema("features.sentiment_hourly").columns}
    assert not hourly["news_coverage_24h"].constraints.nullable
    assert hourly["news_coverage_24h"].constraints.other[:2] == [">= 0", "<= 1"]
    assert hourly["sentiment_mean_24h"].constraints.nullable  # null where no news provider looked


@pytest.mark.parametrize(
    ("table", "column", "value", "check"),
    [
        ("features.feature_vectors", "gap_hours_24h", 24, "less_than_or_equal_to(23)"),
        ("features.feature_vectors", "venues_24h", -1, "greater_than_or_equal_to(0)"),
        ("features.feature_vectors", "news_coverage_24h", 1.5, "less_than_or_equal_to(1)"),
        ("features.feature_vectors", "venues_24h", None, "not_nullable"),
        ("ml.training_set", "news_coverage_24h", np.nan, "not_nullable"),
        ("features.sentiment_hourly", "news_coverage_24h", -0.1, "greater_than_or_equal_to(0)"),
    ],
)
def test_provenance_columns_reject(table: str, column: str, value: object, check: str) -> None:
    frame = BUILDERS[table]()
    if value is None:
        frame[column] = frame[column].astype("Int64")
        frame.loc[frame.index[-1], column] = pd.NA
        frame[column] = frame[column].astype(float)
    else:
        frame.loc[frame.index[-1], column] = value
    assert (column, check) in _checks(_violation(table, frame))


def test_feature_vectors_allow_null_sentiment_and_coverage() -> None:
    features = data.feature_vectors()
    unknown = features.index[-5:]
    features.loc[unknown, ["sentiment_mean_24h", "news_volume_24h", "sentiment_momentum_6h"]] = np.nan
    features.loc[unknown, "news_coverage_24h"] = np.nan  # no sentiment row for these bars
    validate_frame("features.feature_vectors", features)
    hourly = data.sentiment_hourly()
    hourly.loc[hourly.index[:3], "sentiment_mean_24h"] = np.nan
    validate_frame("features.sentiment_hourly", hourly.assign(news_coverage_24h=0.0))
