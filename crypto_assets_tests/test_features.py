"""The 16 features: hand-computed small cases per group, the catalogue, partitions and point-in-time.

Real data: crypto_assets_tests/fixtures/prices_btc_eth_1h_2022-05-04_2022-08-01.csv.gz (see fixtures/README.md).
The sentiment frames here are made up: sentiment_hourly is another module's output, and build_feature_vectors
only looks it up by (symbol, ts), which is what these tests check.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_assets.transforms.features import (
    FEATURE_CATALOGUE,
    FEATURE_NAMES,
    build_feature_vectors,
    cross_asset_features,
    feature_catalogue_markdown,
    feature_names,
    market_structure_features,
    technical_features,
    temporal_features,
)
from crypto_assets.transforms.indicators import LOOKBACK_BARS, technical_indicators

REAL_PRICES = Path(__file__).parent / "fixtures" / "prices_btc_eth_1h_2022-05-04_2022-08-01.csv.gz"
SENTIMENT = ("sentiment_mean_24h", "news_volume_24h", "sentiment_momentum_6h")
T0 = pd.Timestamp("2024-01-01", tz="UTC")

SPEC_ORDER = (
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
)


def load_real_prices() -> pd.DataFrame:
    df = pd.read_csv(REAL_PRICES)
    df["ts"] = pd.to_datetime(df.pop("open_time_ms"), unit="ms", utc=True)
    return df[["symbol", "ts", "open", "high", "low", "close", "volume"]]


def bars(symbol: str, close, volume=None, hours=None) -> pd.DataFrame:
    """Bars with high = low = close (so the typical price is the close), hourly from T0 unless ``hours`` given."""
    close = np.asarray(close, dtype=float)
    hours = np.arange(len(close)) if hours is None else np.asarray(hours)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": T0 + pd.to_timedelta(hours, unit="h"),
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": np.ones(len(close)) if volume is None else np.asarray(volume, dtype=float),
        }
    )


def synthetic_sentiment(prices: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(prices)
    return pd.DataFrame(
        {
            "symbol": prices["symbol"].to_numpy(),
            "ts": prices["ts"].to_numpy(),
            "sentiment_mean_24h": rng.uniform(-1, 1, n),
            "news_volume_24h": np.log1p(rng.integers(0, 20, n)),
            "sentiment_momentum_6h": rng.uniform(-1, 1, n),
            "news_count_24h": rng.integers(0, 20, n),
        }
    )


# --- catalogue ---


def test_catalogue_is_the_features_md_table_in_order():
    assert FEATURE_NAMES == feature_names() == SPEC_ORDER
    assert [s.number for s in FEATURE_CATALOGUE] == list(range(1, 17))
    groups = [s.group for s in FEATURE_CATALOGUE]
    assert (
        groups
        == ["technical"] * 5 + ["market structure"] * 4 + ["cross-asset"] * 2 + ["sentiment"] * 3 + ["temporal"] * 2
    )
    assert all(s.formula and s.window and s.source for s in FEATURE_CATALOGUE)


def test_catalogue_markdown_has_one_row_per_feature():
    lines = feature_catalogue_markdown().strip().splitlines()
    assert lines[0].startswith("| # | name | group | formula")
    assert len(lines) == 2 + 16
    for line, spec in zip(lines[2:], FEATURE_CATALOGUE, strict=True):
        assert line.startswith(f"| {spec.number} | `{spec.name}` | {spec.group} |")
        assert line.count(" | ") == 5  # no stray pipes inside a cell


# --- technical (1-5) ---


def test_technical_features_hand_computed():
    prices = bars("X", [200.0, 50.0, 80.0])
    indicators = pd.DataFrame(
        {
            "symbol": ["X", "X"],
            "ts": [T0 + pd.Timedelta(hours=1), T0],  # out of order on purpose
            "rsi_14": [40.0, 55.0],
            "macd_hist": [-1.0, 2.0],
            "bb_pct_b": [1.2, 0.3],
            "atr_14": [5.0, 4.0],
            "ema_12": [99.0, 102.0],
            "ema_26": [100.0, 100.0],
        }
    )
    out = technical_features(indicators, prices)
    assert out.columns.tolist() == ["symbol", "ts", *SPEC_ORDER[:5]]
    row0, row1, row2 = (out.iloc[i] for i in range(3))
    # bar 0: close 200 -> macd_hist_norm 2/200, atr 4/200, ema 102/100 - 1
    assert row0["rsi_14"] == 55.0 and row0["bb_pct_b"] == 0.3
    assert row0["macd_hist_norm"] == pytest.approx(0.01, rel=1e-15)
    assert row0["atr_14_pct"] == pytest.approx(0.02, rel=1e-15)
    assert row0["ema_ratio_12_26"] == pytest.approx(0.02, rel=1e-12)
    # bar 1: close 50 -> -1/50, 5/50, 99/100 - 1
    assert row1["macd_hist_norm"] == pytest.approx(-0.02, rel=1e-15)
    assert row1["atr_14_pct"] == pytest.approx(0.1, rel=1e-15)
    assert row1["ema_ratio_12_26"] == pytest.approx(-0.01, rel=1e-12)
    # bar 2 has no indicators row: null, not 0
    assert row2[list(SPEC_ORDER[:5])].isna().all()


def test_atr_pct_is_null_for_the_first_14_bars_of_each_series():
    prices = load_real_prices()
    out = technical_features(technical_indicators(prices), prices)
    for sym in ("BTC", "ETH"):
        atr = out.loc[out["symbol"] == sym, "atr_14_pct"].reset_index(drop=True)
        assert atr.iloc[:14].isna().all() and atr.iloc[14:].notna().all()


# --- market structure (6-9) ---


def test_market_structure_hand_computed():
    # Closes alternate 100 (even bars) and 110 (odd bars): log returns alternate +ln(1.1), -ln(1.1).
    close = [100.0 if k % 2 == 0 else 110.0 for k in range(25)]
    # Volumes 10, except bar 23 with 34.
    volume = [10.0] * 25
    volume[23] = 34.0
    out = market_structure_features(bars("X", close, volume))
    lr = out["log_return_1h"]
    assert math.isnan(lr.iloc[0])
    assert lr.iloc[1] == pytest.approx(math.log(1.1), rel=1e-15)
    assert lr.iloc[2] == pytest.approx(-math.log(1.1), rel=1e-15)

    # Bar 24: the last 24 returns are 12 x (+a) and 12 x (-a): mean 0, sample std = a*sqrt(24/23).
    vol = out["realized_vol_24h"]
    assert vol.iloc[:24].isna().all()
    assert vol.iloc[24] == pytest.approx(math.log(1.1) * math.sqrt(24 / 23), rel=1e-12)

    # Bar 23: volumes 23 x 10 and 34: mean 11, sum of squares 23*1 + 23^2 = 552, var 552/23 = 24.
    z = out["volume_zscore_24h"]
    assert z.iloc[:23].isna().all()
    assert z.iloc[23] == pytest.approx(23 / math.sqrt(24), rel=1e-12)
    # Bar 24: window bars 1..24 holds the same values (22 x 10, 34, 10): z = (10 - 11)/sqrt(24).
    assert z.iloc[24] == pytest.approx(-1 / math.sqrt(24), rel=1e-12)

    # Bar 23: tp = close. sum(tp*v) = 12*100*10 + 11*110*10 + 110*34 = 27840, sum(v) = 264;
    # vwap_dev = 110 / (27840/264) - 1 = 1200/27840 = 5/116.
    dev = out["vwap_dev_24h"]
    assert dev.iloc[:23].isna().all()
    assert dev.iloc[23] == pytest.approx(5 / 116, rel=1e-12)


def test_volume_zscore_is_zero_for_a_constant_window():
    out = market_structure_features(bars("X", np.linspace(100, 130, 30), np.full(30, 0.1)))
    z = out["volume_zscore_24h"]
    assert z.iloc[:23].isna().all()
    assert (z.iloc[23:] == 0.0).all()


def test_windows_count_bars_not_hours():
    """A missing hour is not invented: the return and the windows reach back to the previous bar."""
    out = market_structure_features(bars("X", [100.0, 110.0, 121.0], hours=[0, 1, 5]))
    assert out["log_return_1h"].iloc[2] == pytest.approx(math.log(121 / 110), rel=1e-15)


def test_market_structure_per_symbol_equals_alone():
    prices = load_real_prices()
    both = market_structure_features(prices)
    eth = market_structure_features(prices[prices["symbol"] == "ETH"])
    pd.testing.assert_frame_equal(both[both["symbol"] == "ETH"].reset_index(drop=True), eth)
    # The first rows of ETH (sorted after BTC) must not borrow BTC's bars.
    assert eth["realized_vol_24h"].iloc[:24].isna().all()


# --- cross-asset (10-11) ---


def test_btc_corr_hand_computed():
    a = [100.0 if k % 2 == 0 else 110.0 for k in range(26)]  # BTC returns +,-,+,-...
    same = [50.0 if k % 2 == 0 else 60.5 for k in range(26)]  # returns 2x BTC's -> corr 1
    mirror = [110.0 if k % 2 == 0 else 100.0 for k in range(26)]  # returns -BTC's -> corr -1
    # returns +,+,-,-,... : over 24 bars sum(x*y) = 0 and both means are 0 -> corr 0
    quarter = [(100.0, 110.0, 121.0, 110.0)[k % 4] for k in range(26)]
    flat = [70.0] * 26  # no variance: correlation undefined -> null
    prices = pd.concat(
        [bars("BTC", a), bars("SAME", same), bars("MIRROR", mirror), bars("QUARTER", quarter), bars("FLAT", flat)]
    )
    out = cross_asset_features(prices).set_index(["symbol", "ts"])["btc_corr_24h"]
    at = T0 + pd.Timedelta(hours=24)
    assert out[("SAME", at)] == pytest.approx(1.0, abs=1e-12)
    assert out[("MIRROR", at)] == pytest.approx(-1.0, abs=1e-12)
    assert out[("QUARTER", at)] == pytest.approx(0.0, abs=1e-12)
    assert out[("BTC", at)] == 1.0
    assert math.isnan(out[("FLAT", at)])
    before = T0 + pd.Timedelta(hours=23)
    assert all(math.isnan(out[(s, before)]) for s in ("BTC", "SAME", "MIRROR", "QUARTER"))


def test_btc_rel_strength_hand_computed_and_exact_for_btc():
    k = np.arange(40)
    prices = pd.concat([bars("BTC", 100.0 + k), bars("ALT", 50.0 + 2 * k)])
    out = cross_asset_features(prices)
    alt = out[out["symbol"] == "ALT"].reset_index(drop=True)
    btc = out[out["symbol"] == "BTC"].reset_index(drop=True)
    rel = alt["btc_rel_strength_24h"]
    assert rel.iloc[:24].isna().all()
    assert rel.iloc[24] == pytest.approx(math.log(98 / 50) - math.log(124 / 100), rel=1e-12)
    assert rel.iloc[30] == pytest.approx(math.log(110 / 62) - math.log(130 / 106), rel=1e-12)
    assert btc["btc_rel_strength_24h"].iloc[:24].isna().all()
    assert (btc["btc_rel_strength_24h"].iloc[24:] == 0.0).all()
    assert (btc["btc_corr_24h"].iloc[24:] == 1.0).all()
    # ALT and BTC returns are both positive and smoothly falling: highly, not perfectly, correlated.
    assert 0.9 < alt["btc_corr_24h"].iloc[30] < 1.0


def test_cross_asset_null_where_btc_has_no_bar():
    k = np.arange(60)
    btc = bars("BTC", 100.0 + np.sin(k)).drop(index=30)  # BTC lacks the bar of hour 30
    alt = bars("ALT", 50.0 + np.cos(k))
    out = cross_asset_features(pd.concat([btc, alt]))
    a = out[out["symbol"] == "ALT"].reset_index(drop=True)
    corr, rel = a["btc_corr_24h"], a["btc_rel_strength_24h"]
    assert corr.iloc[:24].isna().all() and corr.iloc[24:30].notna().all()
    assert corr.iloc[30:54].isna().all()  # every window holding hour 30
    assert corr.iloc[54:].notna().all()
    assert math.isnan(rel.iloc[30]) and math.isnan(rel.iloc[54])  # b_t or b_{t-24} missing
    assert rel.iloc[24:30].notna().all() and rel.iloc[31:54].notna().all() and rel.iloc[55:].notna().all()
    # Without the benchmark in the frame, both features are null.
    alone = cross_asset_features(alt)
    assert alone[["btc_corr_24h", "btc_rel_strength_24h"]].isna().all().all()


# --- temporal (15-16) ---


def test_temporal_hand_computed_and_keeps_row_order():
    frame = pd.DataFrame(
        {
            "symbol": ["A", "B", "A", "C"],
            "ts": pd.to_datetime(
                ["2024-01-02 06:00", "2024-01-01 00:00", "2024-01-01 12:00", "2024-03-01 18:00"], utc=True
            ),
        }
    )
    out = temporal_features(frame)
    assert out["symbol"].tolist() == ["A", "B", "A", "C"]
    np.testing.assert_allclose(out["hour_sin"], [1.0, 0.0, 0.0, -1.0], atol=1e-15)
    np.testing.assert_allclose(out["hour_cos"], [0.0, 1.0, -1.0, 0.0], atol=1e-15)


# --- the whole vector ---


def test_build_feature_vectors_shape_order_and_consistency():
    prices = load_real_prices()
    ind = technical_indicators(prices)
    sent = synthetic_sentiment(prices)
    fv = build_feature_vectors(prices.sample(frac=1.0, random_state=2), ind, sent)
    assert fv.columns.tolist() == ["symbol", "ts", *SPEC_ORDER]
    assert len(fv) == len(prices)
    assert (fv[list(SPEC_ORDER)].dtypes == "float64").all()
    assert str(fv["ts"].dtype) == "datetime64[ns, UTC]"
    assert not fv.duplicated(["symbol", "ts"]).any()
    expected = technical_features(ind, prices)
    expected = expected.merge(market_structure_features(prices), on=["symbol", "ts"])
    expected = expected.merge(cross_asset_features(prices), on=["symbol", "ts"])
    expected = expected.merge(sent.drop(columns="news_count_24h"), on=["symbol", "ts"])
    expected = expected.merge(temporal_features(prices), on=["symbol", "ts"])
    pd.testing.assert_frame_equal(fv, expected[fv.columns.tolist()])
    # After the longest warm-up (MACD signal, bar 33) every feature of the real data is present.
    late = fv.groupby("symbol").cumcount() >= 34
    assert fv.loc[late, list(SPEC_ORDER)].notna().all().all()


def test_missing_sentiment_stays_null():
    prices = load_real_prices()
    ind = technical_indicators(prices)
    sent = synthetic_sentiment(prices)
    present = (sent["symbol"] == "BTC") & (sent["ts"] < pd.Timestamp("2022-06-01", tz="UTC"))
    fv = build_feature_vectors(prices, ind, sent[present])
    has = (fv["symbol"] == "BTC") & (fv["ts"] < pd.Timestamp("2022-06-01", tz="UTC"))
    np.testing.assert_array_equal(
        fv.loc[has, "sentiment_mean_24h"].to_numpy(), sent.loc[present, "sentiment_mean_24h"].to_numpy()
    )
    assert fv.loc[~has, list(SENTIMENT)].isna().all().all()
    assert build_feature_vectors(prices, ind, None)[list(SENTIMENT)].isna().all().all()


def partitioned_features(prices: pd.DataFrame, sentiment: pd.DataFrame, lookback_bars: int) -> pd.DataFrame:
    """Each UTC day alone, as a day partition would be materialized: its bars plus look-back, then kept rows."""
    parts = []
    for day in pd.date_range(prices["ts"].min().normalize(), prices["ts"].max(), freq="D"):
        start, end = day - pd.Timedelta(hours=lookback_bars), day + pd.Timedelta(days=1)
        window = prices[(prices["ts"] >= start) & (prices["ts"] < end)]
        fv = build_feature_vectors(window, technical_indicators(window), sentiment[sentiment["ts"] < end])
        parts.append(fv[fv["ts"] >= day])
    return pd.concat(parts).sort_values(["symbol", "ts"], ignore_index=True)


def test_day_partitions_with_lookback_equal_whole_history():
    prices = load_real_prices()
    sentiment = synthetic_sentiment(prices)
    whole = build_feature_vectors(prices, technical_indicators(prices), sentiment)
    part = partitioned_features(prices, sentiment, LOOKBACK_BARS)
    assert part[["symbol", "ts"]].equals(whole[["symbol", "ts"]])
    for name in SPEC_ORDER:
        a, b = whole[name].to_numpy(), part[name].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), name
        ok = ~np.isnan(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(a[ok]), np.abs(b[ok]))
        rel[a[ok] == b[ok]] = 0.0
        assert rel.max() <= 1e-6, (name, rel.max())


@pytest.mark.parametrize("cut", ["2022-05-06 05:00", "2022-06-13 17:00", "2022-08-01 10:00"])
def test_no_leakage_from_later_prices_or_sentiment(cut):
    prices = load_real_prices()
    sentiment = synthetic_sentiment(prices)
    base = build_feature_vectors(prices, technical_indicators(prices), sentiment)

    t = pd.Timestamp(cut, tz="UTC")
    rng = np.random.default_rng(11)
    changed = prices.copy()
    later = changed["ts"] >= t
    for col in ("open", "high", "low", "close", "volume"):
        changed.loc[later, col] *= rng.uniform(0.5, 1.5, later.sum())
    changed_sent = sentiment.copy()
    later_s = changed_sent["ts"] >= t
    for col in SENTIMENT:
        changed_sent.loc[later_s, col] = rng.uniform(-1, 1, later_s.sum())
    out = build_feature_vectors(changed, technical_indicators(changed), changed_sent)

    before = base["ts"] <= t - pd.Timedelta(hours=1)
    pd.testing.assert_frame_equal(out[before], base[before])
    # The perturbation is real: bar t itself sees it.
    at_t = base["ts"] == t
    for name in ("log_return_1h", "rsi_14", "vwap_dev_24h", "sentiment_mean_24h"):
        assert (out.loc[at_t, name].to_numpy() != base.loc[at_t, name].to_numpy()).all(), name


def test_docs_feature_catalogue_is_generated_from_the_code():
    from crypto_assets.config import REPO_ROOT
    from crypto_assets.transforms.features import feature_catalogue_document

    assert (REPO_ROOT / "docs" / "features.md").read_text() == feature_catalogue_document()
