"""Labels, chronological purged splits, the training set and its summary. No mocks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from crypto_assets.transforms.features import FEATURE_NAMES, PROVENANCE_COLUMNS, build_feature_vectors
from crypto_assets.transforms.indicators import technical_indicators
from crypto_assets.transforms.training import (
    TRAINING_COLUMNS,
    add_labels,
    assign_splits,
    build_training_set,
    split_summary,
)
from crypto_assets_tests.fixtures_util import load_real_prices

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


def bars(symbol: str, close, hours) -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": T0 + pd.to_timedelta(np.asarray(hours), unit="h"),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 1.0,
        }
    )


def grid(n_ts: int, symbols=("BTC", "ETH")) -> pd.DataFrame:
    ts = T0 + pd.to_timedelta(np.arange(n_ts), unit="h")
    return pd.DataFrame([(s, t) for s in symbols for t in ts], columns=["symbol", "ts"])


@pytest.fixture(scope="module")
def real_training_set() -> tuple[pd.DataFrame, pd.DataFrame]:
    prices = load_real_prices()
    rng = np.random.default_rng(5)
    sentiment = prices[["symbol", "ts"]].assign(
        sentiment_mean_24h=rng.uniform(-1, 1, len(prices)),
        news_volume_24h=np.log1p(rng.integers(0, 9, len(prices))),
        sentiment_momentum_6h=rng.uniform(-1, 1, len(prices)),
        news_coverage_24h=rng.integers(1, 25, len(prices)) / 24,
    )
    fv = build_feature_vectors(prices, technical_indicators(prices), sentiment)
    return fv, build_training_set(fv, prices)


# --- labels ---


def test_labels_hand_computed_with_a_gap_and_the_last_bar():
    prices = bars("X", [100.0, 110.0, 99.0, 50.0, 60.0], hours=[0, 1, 2, 4, 5])
    features = prices[["symbol", "ts"]].assign(f=1.0)
    out = add_labels(features, prices)
    target = out["target_log_return_1h"]
    assert target.iloc[0] == pytest.approx(math.log(1.1), rel=1e-15)
    assert target.iloc[1] == pytest.approx(math.log(0.9), rel=1e-15)
    assert math.isnan(target.iloc[2])  # next bar is 2 h later: no label
    assert target.iloc[3] == pytest.approx(math.log(1.2), rel=1e-15)
    assert math.isnan(target.iloc[4])  # last bar
    assert str(out["target_up_1h"].dtype) == "boolean"
    assert out["target_up_1h"].tolist() == [True, False, pd.NA, True, pd.NA]
    assert (out["f"] == 1.0).all()  # features untouched


def test_labels_equal_next_close_log_return_on_real_data():
    prices = load_real_prices()
    out = add_labels(prices[["symbol", "ts"]], prices)
    for sym, g in prices.groupby("symbol"):
        close = g["close"].to_numpy()
        expected = np.r_[np.log(close[1:] / close[:-1]), np.nan]
        got = out.loc[out["symbol"] == sym, "target_log_return_1h"].to_numpy()
        np.testing.assert_array_equal(got, expected)


def test_labels_are_not_features():
    assert not {"target_log_return_1h", "target_up_1h"} & set(FEATURE_NAMES)


# --- splits ---


def test_splits_proportions_order_and_purge():
    frame = grid(1000)
    out = assign_splits(frame)
    ts = {s: out.loc[out["split"] == s, "ts"] for s in ("train", "valid", "test")}
    # 1000 distinct ts: 700 train, 150 valid, 150 test, minus 24 purged after each of the 2 boundaries.
    assert [ts[s].nunique() for s in ("train", "valid", "test")] == [700, 126, 126]
    assert len(out) == 2 * (700 + 126 + 126)
    assert ts["train"].min() == T0 and ts["train"].max() == T0 + 699 * HOUR
    assert ts["valid"].min() == T0 + 724 * HOUR and ts["valid"].max() == T0 + 849 * HOUR
    assert ts["test"].min() == T0 + 874 * HOUR and ts["test"].max() == T0 + 999 * HOUR
    # chronological and disjoint; a timestamp is in one split for every symbol
    assert ts["train"].max() < ts["valid"].min() and ts["valid"].max() < ts["test"].min()
    assert out.groupby("ts")["split"].nunique().max() == 1
    # purge: no 24-bar window ending in one split starts in the previous one
    assert ts["valid"].min() - ts["train"].max() == 25 * HOUR
    assert ts["test"].min() - ts["valid"].max() == 25 * HOUR


def test_splits_follow_distinct_ts_not_rows_and_custom_fractions():
    frame = pd.concat([grid(200, ("BTC",)), grid(100, ("ETH",))])  # ETH only in the first 100 hours
    out = assign_splits(frame, train=0.5, valid=0.25, purge_bars=10)
    split_of = out.drop_duplicates("ts").set_index("ts")["split"]
    assert (split_of[split_of.index < T0 + 100 * HOUR] == "train").all()
    assert split_of.value_counts().to_dict() == {"train": 100, "valid": 40, "test": 40}
    with pytest.raises(ValueError, match="split fractions"):
        assign_splits(frame, train=0.9, valid=0.2)


# --- training set ---


def test_training_set_columns_types_and_completeness(real_training_set):
    fv, ts = real_training_set
    assert ts.columns.tolist() == list(TRAINING_COLUMNS)
    assert ts.columns.tolist() == [
        "symbol", "ts", *FEATURE_NAMES, "gap_hours_24h", "venues_24h", "news_coverage_24h",
        "target_log_return_1h", "target_up_1h", "split",
    ]  # fmt: skip
    assert ts["gap_hours_24h"].dtype == "int64" and ts["venues_24h"].dtype == "int64"
    assert (ts["gap_hours_24h"] == 0).all() and (ts["venues_24h"] == 1).all() and (ts["news_coverage_24h"] > 0).all()
    assert ts.drop(columns=["split"]).notna().all().all()
    assert ts["target_up_1h"].dtype == bool
    assert (ts["target_up_1h"] == (ts["target_log_return_1h"] > 0)).all()
    assert set(ts["split"]) == {"train", "valid", "test"}
    assert not ts.duplicated(["symbol", "ts"]).any()
    # every complete (features + label) row is kept unless purged: 48 ts purged x 2 symbols
    complete = add_labels(fv, load_real_prices()).dropna()
    assert len(ts) == len(complete) - 2 * 48
    # features are carried over unchanged
    merged = ts.merge(fv, on=["symbol", "ts"], suffixes=("", "_fv"))
    for name in (*FEATURE_NAMES, *PROVENANCE_COLUMNS):
        np.testing.assert_array_equal(merged[name].to_numpy(), merged[f"{name}_fv"].to_numpy())


def test_training_set_drops_rows_without_sentiment(real_training_set):
    fv, ts = real_training_set
    prices = load_real_prices()
    no_eth_sentiment = fv.copy()
    no_eth_sentiment.loc[no_eth_sentiment["symbol"] == "ETH", "news_volume_24h"] = np.nan
    out = build_training_set(no_eth_sentiment, prices)
    assert set(out["symbol"]) == {"BTC"}
    assert len(out) == (ts["symbol"] == "BTC").sum()


def test_training_set_needs_the_provenance_columns(real_training_set):
    fv, _ = real_training_set
    with pytest.raises(ValueError, match="venues_24h"):
        build_training_set(fv.drop(columns=["venues_24h"]), load_real_prices())


def test_split_summary(real_training_set):
    _, ts = real_training_set
    summary = split_summary(ts)
    json.dumps(summary)  # metadata-ready
    splits = summary["splits"]
    assert summary["rows"] == len(ts) == sum(splits[s]["rows"] for s in ("train", "valid", "test"))
    assert splits["train"]["end"] < splits["valid"]["start"] < splits["valid"]["end"] < splits["test"]["start"]
    for name in ("train", "valid", "test"):
        part = ts[ts["split"] == name]
        assert splits[name]["up_rows"] + splits[name]["down_rows"] == len(part)
        assert splits[name]["up_share"] == pytest.approx(part["target_up_1h"].mean(), abs=1e-6)
        assert splits[name]["symbols"] == 2
    # 70/15/15 of the distinct usable ts, before the purge
    n = sum(splits[s]["distinct_ts"] for s in ("train", "valid", "test")) + 48
    assert splits["train"]["distinct_ts"] == round(0.70 * n)
    assert split_summary(ts.iloc[:0])["splits"]["test"]["rows"] == 0
