"""The 16 features: hand-computed small cases per group, the catalogue, partitions and point-in-time, and the
hourly grid (gaps, venue switches, BTC's missing hours) on real bars with hours cut out.

Real data: crypto_assets_tests/fixtures/prices_btc_eth_1h_2022-05-04_2022-08-01.csv.gz (see fixtures/README.md),
Binance bars, so their ``provider`` is "binance"; where a test needs a venue switch it relabels real bars as
served by another provider (the bar values stay the recorded ones, as the replay server serves the same bundled
bars in each provider's format). The sentiment frames here are made up: sentiment_hourly is another module's
output, and build_feature_vectors only looks it up by (symbol, ts), which is what these tests check.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crypto_assets.transforms.features import (
    FEATURE_CATALOGUE,
    FEATURE_NAMES,
    PROVENANCE_CATALOGUE,
    PROVENANCE_COLUMNS,
    bar_provenance,
    build_feature_vectors,
    complete_windows,
    cross_asset_features,
    feature_catalogue_markdown,
    feature_names,
    market_structure_features,
    technical_features,
    temporal_features,
)
from crypto_assets.transforms.indicators import LOOKBACK_BARS, technical_indicators
from crypto_assets_tests.fixtures_util import load_real_prices

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
            "provider": "binance",
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
            "news_coverage_24h": rng.integers(1, 25, n) / 24,
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
    assert all(s.formula and s.window and s.source and s.null_when for s in FEATURE_CATALOGUE)
    # Nullable while a window fills, across a gap or without news coverage: all but the time of day.
    assert [s.name for s in FEATURE_CATALOGUE if not s.nullable] == ["hour_sin", "hour_cos"]
    bounds = {s.name: s.bounds() for s in FEATURE_CATALOGUE}
    assert bounds["rsi_14"] == {"ge": 0, "le": 100} and bounds["log_return_1h"] == {}
    assert bounds["sentiment_mean_24h"] == {"ge": -1, "le": 1} and bounds["vwap_dev_24h"] == {"gt": -1}
    assert PROVENANCE_COLUMNS == ("gap_hours_24h", "venues_24h", "news_coverage_24h")
    assert [s.integer for s in PROVENANCE_CATALOGUE] == [True, True, False]


def test_catalogue_markdown_has_one_row_per_feature():
    lines = feature_catalogue_markdown().strip().splitlines()
    assert lines[0].startswith("| # | name | group | formula | window | range | null when")
    assert len(lines) == 2 + 16
    for line, spec in zip(lines[2:], FEATURE_CATALOGUE, strict=True):
        assert line.startswith(f"| {spec.number} | `{spec.name}` | {spec.group} |")
        assert line.count(" | ") == 7  # no stray pipes inside a cell
    assert "| `rsi_14` | technical |" in lines[2] and "| 0 <= x <= 100 |" in lines[2]


# --- technical (1-5) ---


def test_technical_features_hand_computed():
    # 26 hourly bars: closes 200, 50, 80 at hours 23-25 (the first with a full 24-hour window).
    prices = bars("X", [100.0] * 23 + [200.0, 50.0, 80.0])
    indicators = pd.DataFrame(
        {
            "symbol": ["X", "X", "X"],
            "ts": [T0 + pd.Timedelta(hours=24), T0 + pd.Timedelta(hours=23), T0 + pd.Timedelta(hours=5)],
            "rsi_14": [40.0, 55.0, 50.0],
            "macd_hist": [-1.0, 2.0, 1.0],
            "bb_pct_b": [1.2, 0.3, 0.5],
            "atr_14": [5.0, 4.0, 1.0],
            "ema_12": [99.0, 102.0, 100.0],
            "ema_26": [100.0, 100.0, 100.0],
        }
    )  # out of order on purpose
    out = technical_features(indicators, prices)
    assert out.columns.tolist() == ["symbol", "ts", *SPEC_ORDER[:5]]
    row0, row1, row2 = (out.iloc[i] for i in (23, 24, 25))
    # bar 23: close 200 -> macd_hist_norm 2/200, atr 4/200, ema 102/100 - 1
    assert row0["rsi_14"] == 55.0 and row0["bb_pct_b"] == 0.3
    assert row0["macd_hist_norm"] == pytest.approx(0.01, rel=1e-15)
    assert row0["atr_14_pct"] == pytest.approx(0.02, rel=1e-15)
    assert row0["ema_ratio_12_26"] == pytest.approx(0.02, rel=1e-12)
    # bar 24: close 50 -> -1/50, 5/50, 99/100 - 1
    assert row1["macd_hist_norm"] == pytest.approx(-0.02, rel=1e-15)
    assert row1["atr_14_pct"] == pytest.approx(0.1, rel=1e-15)
    assert row1["ema_ratio_12_26"] == pytest.approx(-0.01, rel=1e-12)
    # bar 25 has no indicators row: null, not 0
    assert row2[list(SPEC_ORDER[:5])].isna().all()
    # bar 5 has one, but its 24-hour window reaches before the series' first bar (18 hours without a bar)
    assert out.iloc[5][list(SPEC_ORDER[:5])].isna().all()


def test_technical_features_are_null_while_the_first_24_hours_hold_a_gap():
    """ta's ATR is null for 14 bars; the hours before a series' first bar are hours without a bar (a gap), so
    features 1-5 wait until 24 bars exist."""
    prices = load_real_prices()
    ind = technical_indicators(prices)
    out = technical_features(ind, prices)
    for sym in ("BTC", "ETH"):
        atr = out.loc[out["symbol"] == sym, "atr_14_pct"].reset_index(drop=True)
        assert atr.iloc[:23].isna().all() and atr.iloc[23:].notna().all()
        raw_atr = ind.loc[ind["symbol"] == sym, "atr_14"].reset_index(drop=True)
        assert raw_atr.iloc[:14].isna().all() and raw_atr.iloc[14:].notna().all()  # the indicator table keeps ta's


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


def test_windows_count_hours_not_rows():
    """A missing hour is not invented and not skipped: the bar after it has no 1h return."""
    out = market_structure_features(bars("X", [100.0, 110.0, 121.0, 133.1], hours=[0, 1, 5, 6]))
    lr = out["log_return_1h"]
    assert math.isnan(lr.iloc[0]) and math.isnan(lr.iloc[2])  # 5h after hour 1: not a 1h return
    assert lr.iloc[1] == pytest.approx(math.log(1.1), rel=1e-15)
    assert lr.iloc[3] == pytest.approx(math.log(1.1), rel=1e-15)


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
    # every window holding BTC's return of hour 30 (no bar) or 31 (no bar at 30 before it)
    assert corr.iloc[30:55].isna().all()
    assert corr.iloc[55:].notna().all()
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
    assert fv.columns.tolist() == ["symbol", "ts", *SPEC_ORDER, "gap_hours_24h", "venues_24h", "news_coverage_24h"]
    assert len(fv) == len(prices)
    assert (fv[list(SPEC_ORDER)].dtypes == "float64").all()
    assert fv["gap_hours_24h"].dtype == "int64" and fv["venues_24h"].dtype == "int64"
    assert (fv["venues_24h"] == 1).all()  # every bar from Binance
    assert str(fv["ts"].dtype) == "datetime64[ns, UTC]"
    assert not fv.duplicated(["symbol", "ts"]).any()
    expected = technical_features(ind, prices)
    expected = expected.merge(market_structure_features(prices), on=["symbol", "ts"])
    expected = expected.merge(cross_asset_features(prices), on=["symbol", "ts"])
    expected = expected.merge(sent.drop(columns="news_count_24h"), on=["symbol", "ts"])
    expected = expected.merge(temporal_features(prices), on=["symbol", "ts"])
    expected = expected.merge(bar_provenance(prices), on=["symbol", "ts"])
    pd.testing.assert_frame_equal(fv, expected[fv.columns.tolist()])
    # The real series have no gap: only the hours before their first bar count, 23, 22, ..., 0.
    first = fv.groupby("symbol").cumcount()
    np.testing.assert_array_equal(fv["gap_hours_24h"], np.maximum(23 - first, 0))
    # After the longest warm-up (MACD signal, bar 33) every feature of the real data is present.
    late = first >= 34
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
    np.testing.assert_array_equal(
        fv.loc[has, "news_coverage_24h"].to_numpy(), sent.loc[present, "news_coverage_24h"].to_numpy()
    )
    assert fv.loc[~has, [*SENTIMENT, "news_coverage_24h"]].isna().all().all()
    assert build_feature_vectors(prices, ind, None)[[*SENTIMENT, "news_coverage_24h"]].isna().all().all()


def test_sentiment_is_null_where_nobody_looked():
    prices = load_real_prices()
    sent = synthetic_sentiment(prices)
    uncovered = sent["ts"].dt.day == 9
    sent.loc[uncovered, "news_coverage_24h"] = 0.0
    fv = build_feature_vectors(prices, technical_indicators(prices), sent)
    unknown = fv["ts"].dt.day == 9
    assert fv.loc[unknown, list(SENTIMENT)].isna().all().all() and (fv.loc[unknown, "news_coverage_24h"] == 0).all()
    assert fv.loc[~unknown, list(SENTIMENT)].notna().all().all()
    with pytest.raises(ValueError, match="news_coverage_24h"):
        build_feature_vectors(prices, technical_indicators(prices), sent.drop(columns="news_coverage_24h"))
    with pytest.raises(ValueError, match="provider"):
        build_feature_vectors(prices.drop(columns="provider"), technical_indicators(prices), sent)


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
    pd.testing.assert_frame_equal(part[list(PROVENANCE_COLUMNS)], whole[list(PROVENANCE_COLUMNS)])
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


# --- the hourly grid: real bars with hours cut out ---

H = pd.Timedelta(hours=1)
# In the Celsius / Three Arrows crash: BTC moved 6.3 % between 09:00 and 13:00 that day.
GAP_DAY = pd.Timestamp("2022-06-15", tz="UTC")


def at(frame: pd.DataFrame, symbol: str, ts: pd.Timestamp) -> pd.Series:
    row = frame[(frame["symbol"] == symbol) & (frame["ts"] == ts)]
    assert len(row) == 1, (symbol, ts)
    return row.iloc[0]


def features_of(prices: pd.DataFrame) -> pd.DataFrame:
    """The feature vectors of ``prices``, with the same made-up sentiment per (symbol, ts) whatever is cut out."""
    sentiment = synthetic_sentiment(load_real_prices())
    return build_feature_vectors(prices, technical_indicators(prices), sentiment)


def test_a_three_hour_gap_gives_no_1h_return_and_null_windows_for_24_hours():
    """BTC loses 10:00, 11:00 and 12:00: at 13:00 there is no "1h" return (it would be a 4-hour move), and every
    window holding a missing hour is null; once the window is whole again the values are the gap-free ones."""
    prices = load_real_prices()
    missing = (prices["symbol"] == "BTC") & prices["ts"].between(GAP_DAY + 10 * H, GAP_DAY + 12 * H)
    assert missing.sum() == 3
    full = features_of(prices)
    cut = features_of(prices[~missing])
    btc = cut[cut["symbol"] == "BTC"].set_index("ts")
    ref = full[full["symbol"] == "BTC"].set_index("ts")
    closes = prices[prices["symbol"] == "BTC"].set_index("ts")["close"]

    after = GAP_DAY + 13 * H
    four_hour_move = math.log(closes[after] / closes[GAP_DAY + 9 * H])
    assert abs(four_hour_move) > 0.06  # a real move that would have been labelled 1h
    assert math.isnan(btc.at[after, "log_return_1h"])
    assert btc.at[after + H, "log_return_1h"] == ref.at[after + H, "log_return_1h"]
    assert btc.at[after, "gap_hours_24h"] == 3 and btc.at[GAP_DAY + 9 * H, "gap_hours_24h"] == 0

    # [ts - 23h, ts] holds 12:00 until ts = 11:00 the next day; realized_vol also needs the bar at ts - 24h.
    last_gappy = GAP_DAY + 35 * H
    gappy = btc.loc[after:last_gappy]
    assert len(gappy) == 23 and (gappy["gap_hours_24h"] > 0).all()
    windowed = ["volume_zscore_24h", "vwap_dev_24h", *SPEC_ORDER[:5], "btc_corr_24h"]
    assert gappy[[*windowed, "realized_vol_24h"]].isna().all().all()
    whole = last_gappy + H
    assert btc.at[whole, "gap_hours_24h"] == 0
    assert math.isnan(btc.at[whole, "realized_vol_24h"])  # its first return (12:00 -> 13:00) is missing
    for name in ("log_return_1h", "volume_zscore_24h", "vwap_dev_24h"):
        assert btc.at[whole, name] == ref.at[whole, name], name
    recovered = btc.loc[whole + H :]
    for name in ("log_return_1h", "realized_vol_24h", "volume_zscore_24h", "vwap_dev_24h", "btc_corr_24h"):
        np.testing.assert_array_equal(recovered[name], ref.loc[whole + H :, name], err_msg=name)
    # ta keeps its memory across the gap (its semantics), but never shows a value while the window holds it
    assert btc.loc[whole:, list(SPEC_ORDER[:5])].notna().all().all()
    # btc_rel_strength_24h needs the bars at ts and ts - 24h only: null exactly where ts - 24h is missing
    rel = btc["btc_rel_strength_24h"]
    assert rel.loc[GAP_DAY + 34 * H : GAP_DAY + 36 * H].isna().all() and rel.loc[after : GAP_DAY + 33 * H].eq(0.0).all()

    # ...and none of it reaches the training set
    from crypto_assets.transforms.training import build_training_set

    training = build_training_set(cut, prices[~missing])
    btc_rows = training[training["symbol"] == "BTC"]
    assert not btc_rows["ts"].between(GAP_DAY + 9 * H, last_gappy).any()  # 09:00 has no next bar
    assert (training["gap_hours_24h"] == 0).all()


def test_btc_missing_hours_null_only_the_cross_asset_features_of_eth():
    prices = load_real_prices()
    missing = (prices["symbol"] == "BTC") & prices["ts"].between(GAP_DAY + 10 * H, GAP_DAY + 12 * H)
    full = features_of(prices)
    cut = features_of(prices[~missing])
    eth = cut[cut["symbol"] == "ETH"].set_index("ts")
    ref = full[full["symbol"] == "ETH"].set_index("ts")
    own = [name for name in SPEC_ORDER if name not in ("btc_corr_24h", "btc_rel_strength_24h")]
    pd.testing.assert_frame_equal(eth[own], ref[own])  # ETH's own bars are all there
    assert (eth["gap_hours_24h"] == ref["gap_hours_24h"]).all()
    # BTC's returns of 10:00-13:00 are missing (13:00 has no bar before it): windows holding one are null
    corr = eth["btc_corr_24h"]
    assert corr.loc[GAP_DAY + 10 * H : GAP_DAY + 36 * H].isna().all()
    assert corr.loc[: GAP_DAY + 9 * H].iloc[24:].notna().all() and corr.loc[GAP_DAY + 37 * H :].notna().all()
    np.testing.assert_array_equal(corr.loc[GAP_DAY + 37 * H :], ref["btc_corr_24h"].loc[GAP_DAY + 37 * H :])
    # the relative strength needs BTC's bars at ts and ts - 24h
    rel = eth["btc_rel_strength_24h"]
    nulls = set(rel[rel.isna()].index) - set(rel.index[:24])
    expected = {GAP_DAY + h * H for h in (10, 11, 12, 34, 35, 36)}
    assert nulls == expected


def test_a_venue_switch_shows_in_venues_24h():
    """Binance had no bars for a day and another venue served it: every window holding both says 2."""
    prices = load_real_prices()
    switched = (prices["symbol"] == "BTC") & (prices["ts"].dt.floor("D") == GAP_DAY)
    prices.loc[switched, "provider"] = "coinbase"
    fv = features_of(prices)
    btc = fv[fv["symbol"] == "BTC"].set_index("ts")["venues_24h"]
    assert (btc.loc[: GAP_DAY - H].iloc[23:] == 1).all()
    assert (btc.loc[GAP_DAY : GAP_DAY + 22 * H] == 2).all()  # binance hours of the day before, coinbase
    assert btc.loc[GAP_DAY + 23 * H] == 1  # the whole window from coinbase
    assert (btc.loc[GAP_DAY + 24 * H : GAP_DAY + 46 * H] == 2).all() and btc.loc[GAP_DAY + 47 * H] == 1
    assert (fv.loc[fv["symbol"] == "ETH", "venues_24h"] == 1).all()
    # a third venue and a bar without a provider
    prices.loc[switched & (prices["ts"] == GAP_DAY + 5 * H), "provider"] = "cryptocompare"
    prices.loc[switched & (prices["ts"] == GAP_DAY + 6 * H), "provider"] = None
    three = bar_provenance(prices.sample(frac=1.0, random_state=3))
    got = three[three["symbol"] == "BTC"].set_index("ts")["venues_24h"]
    assert got.loc[GAP_DAY + 4 * H] == 2 and got.loc[GAP_DAY + 5 * H] == 3
    assert got.loc[GAP_DAY + 6 * H] == 3  # a bar without a provider is no venue
    assert got.loc[GAP_DAY + 23 * H] == 2  # coinbase and cryptocompare: the whole day
    assert got.loc[GAP_DAY + 28 * H] == 3 and got.loc[GAP_DAY + 29 * H] == 2
    # the training set says which rows mix venues
    from crypto_assets.transforms.training import build_training_set

    training = build_training_set(fv, prices)
    mixed = training[(training["symbol"] == "BTC") & (training["venues_24h"] == 2)]
    assert len(mixed) > 0 and mixed["ts"].between(GAP_DAY, GAP_DAY + 46 * H).all()


def test_complete_windows_follow_the_null_rules():
    """Where complete_windows says a lag or window is complete, the real data has a value, and vice versa."""
    prices = load_real_prices()
    cut = (prices["symbol"] == "BTC") & prices["ts"].between(GAP_DAY + 10 * H, GAP_DAY + 12 * H)
    cut |= (prices["symbol"] == "ETH") & prices["ts"].between(GAP_DAY + 40 * H, GAP_DAY + 41 * H)
    kept = prices[~cut]
    fv = features_of(kept)
    windows = complete_windows(kept[["symbol", "ts"]].sample(frac=1.0, random_state=4))
    assert windows[["symbol", "ts"]].equals(fv[["symbol", "ts"]])
    warm = fv.groupby("symbol").cumcount() >= 34
    for name in [*SPEC_ORDER[:11], "hour_sin", "hour_cos"]:
        present = fv[name].notna().to_numpy()
        complete = windows[name].to_numpy()
        judged = complete & warm.to_numpy()
        assert present[judged].all(), name  # complete window and warmed up: a value
        assert not present[~complete].any(), name  # incomplete: null


def test_day_partitions_equal_whole_history_across_gaps_and_venue_switches():
    """As the assets read: features a day of bars before the partition, indicators 14 days; gaps and a venue
    switch across midnight change nothing in that equality."""
    prices = load_real_prices()
    midnight = GAP_DAY + 24 * H
    cut = (prices["symbol"] == "BTC") & prices["ts"].between(midnight - 2 * H, midnight + H)
    cut |= (prices["symbol"] == "ETH") & (prices["ts"] == GAP_DAY + 7 * H)
    prices = prices[~cut].reset_index(drop=True)
    prices.loc[(prices["symbol"] == "ETH") & (prices["ts"] >= midnight - 5 * H), "provider"] = "coinbase"
    sentiment = synthetic_sentiment(load_real_prices())
    whole = build_feature_vectors(prices, technical_indicators(prices), sentiment)
    parts = []
    for day in pd.date_range(GAP_DAY - 2 * 24 * H, GAP_DAY + 3 * 24 * H, freq="D"):
        end = day + 24 * H
        day_bars = prices[(prices["ts"] >= day - 24 * H) & (prices["ts"] < end)]
        lookback = prices[(prices["ts"] >= day - pd.Timedelta(hours=LOOKBACK_BARS)) & (prices["ts"] < end)]
        indicators = technical_indicators(lookback)
        indicators = indicators[indicators["ts"] >= day]
        fv = build_feature_vectors(day_bars, indicators, sentiment)
        parts.append(fv[fv["ts"] >= day])
    part = pd.concat(parts).sort_values(["symbol", "ts"], ignore_index=True)
    expected = whole[whole["ts"].between(GAP_DAY - 2 * 24 * H, GAP_DAY + 4 * 24 * H - H)].reset_index(drop=True)
    assert part[["symbol", "ts"]].equals(expected[["symbol", "ts"]])
    pd.testing.assert_frame_equal(part[list(PROVENANCE_COLUMNS)], expected[list(PROVENANCE_COLUMNS)])
    assert (part["venues_24h"] == 2).any() and (part["gap_hours_24h"] > 0).sum() > 40
    for name in SPEC_ORDER:
        a, b = expected[name].to_numpy(), part[name].to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), name
        ok = ~np.isnan(a)
        np.testing.assert_allclose(b[ok], a[ok], rtol=1e-6, atol=0, err_msg=name)
