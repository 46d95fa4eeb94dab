"""The data-quality rules and the partition quality score.

Every rule runs on real bundled data (Binance bars of 2022-05-04..13 with the LUNA crash, real news of
2022-05-09..12; fixtures/quality_samples.README.md) and on the same data with one crafted defect. The
one exception is the cross-provider rule: no second provider's bars of that window are bundled, so its
"secondary" sample is the real bars shifted by a stated relative amount. Nothing is mocked.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from crypto_assets.schemas import FEATURE_COLUMNS, validate_frame
from crypto_assets.transforms import quality as q
from crypto_assets_tests import _quality_data as data

UTC = "UTC"
DAY = pd.Timestamp("2022-05-11", tz=UTC)
NEXT_DAY = DAY + pd.Timedelta(days=1)
UNIVERSE = data.UNIVERSE


def _day(prices: pd.DataFrame, day: pd.Timestamp = DAY) -> pd.DataFrame:
    return prices.loc[(prices["ts"] >= day) & (prices["ts"] < day + pd.Timedelta(days=1))].reset_index(drop=True)


# ------------------------------------------------------------------------------------------- OHLC


def test_ohlc_consistency_passes_on_real_bars() -> None:
    result = q.ohlc_consistency(data.real_prices())
    assert result.passed and result.severity == "error" and not result.blocking
    assert result.metrics == {"rows": 1440, "bad_rows": 0, "ratio": 1.0}
    assert result.failures.empty


def test_ohlc_consistency_fails_on_high_below_low() -> None:
    prices = data.real_prices()
    row = prices.index[100]
    prices.loc[row, ["high", "low"]] = prices.loc[row, ["low", "high"]].to_numpy()  # swap: high < low
    prices.loc[prices.index[200], "close"] = prices.loc[prices.index[200], "high"] * 1.01  # close above high
    result = q.ohlc_consistency(prices)
    assert not result.passed and result.blocking
    assert result.metrics["bad_rows"] == 2
    assert result.failures["problem"].tolist() == ["high < low", "high below open/close"]
    assert result.failures["ts"].tolist() == prices.loc[[100, 200], "ts"].tolist()


def test_ohlc_consistency_counts_nan_as_inconsistent() -> None:
    prices = data.real_prices()
    prices.loc[prices.index[0], "low"] = np.nan
    assert q.ohlc_consistency(prices).metrics["bad_rows"] == 1


# ------------------------------------------------------------------------------------ completeness


def test_completeness_passes_on_a_real_full_day() -> None:
    result = q.completeness(_day(data.real_prices()), DAY, NEXT_DAY, UNIVERSE, now=NEXT_DAY + pd.Timedelta(hours=3))
    assert result.passed
    assert result.metrics["expected"] == 24 * 6 == result.metrics["present"]
    assert result.metrics["ratio"] == 1.0


def test_completeness_lists_a_missing_hour() -> None:
    prices = _day(data.real_prices())
    gone = pd.Timestamp("2022-05-11 12:00", tz=UTC)
    prices = prices.loc[~((prices["symbol"] == "SOL") & (prices["ts"] == gone))]
    result = q.completeness(prices, DAY, NEXT_DAY, UNIVERSE, now=NEXT_DAY)
    assert not result.passed and result.blocking
    assert result.failures[["symbol", "ts"]].to_dict("records") == [{"symbol": "SOL", "ts": gone}]
    assert result.metrics["missing"] == 1
    assert result.metrics["missing_by_symbol"]["SOL"] == 1 and result.metrics["missing_by_symbol"]["BTC"] == 0
    assert result.metrics["ratio"] == pytest.approx(143 / 144)


def test_completeness_expects_only_hours_closed_by_now() -> None:
    prices = _day(data.real_prices())
    now = pd.Timestamp("2022-05-11 10:30", tz=UTC)
    known = prices.loc[prices["ts"] + pd.Timedelta(hours=1) <= now]
    result = q.completeness(known, DAY, NEXT_DAY, UNIVERSE, now=now)
    assert result.passed
    assert result.metrics["expected"] == 10 * 6  # bars 00:00 .. 09:00 have closed by 10:30
    # A symbol whose latest closed bar (09:00) has not arrived yet is incomplete.
    late = known.loc[~((known["symbol"] == "ADA") & (known["ts"] == pd.Timestamp("2022-05-11 09:00", tz=UTC)))]
    assert not q.completeness(late, DAY, NEXT_DAY, UNIVERSE, now=now).passed
    # An unknown symbol is missing every hour.
    result = q.completeness(known, DAY, NEXT_DAY, [*UNIVERSE, "DOGE"], now=now)
    assert result.metrics["missing_by_symbol"]["DOGE"] == 10


def test_completeness_before_the_day_expects_nothing_and_rejects_naive_times() -> None:
    result = q.completeness(data.real_prices().iloc[:0], DAY, NEXT_DAY, UNIVERSE, now=DAY)
    assert result.passed and result.metrics["expected"] == 0 and result.metrics["ratio"] == 1.0
    with pytest.raises(ValueError, match="naive"):
        q.completeness(data.real_prices(), DAY, NEXT_DAY, UNIVERSE, now=pd.Timestamp("2022-05-12"))


# -------------------------------------------------------------------------------------- duplicates


def test_duplicate_bars() -> None:
    prices = data.real_prices()
    assert q.duplicate_bars(prices).passed
    twice = pd.concat([prices, prices.iloc[[7]].assign(close=prices["close"].iloc[7] * 1.001)], ignore_index=True)
    result = q.duplicate_bars(twice)
    assert not result.passed and result.blocking
    assert result.metrics == {"rows": 1441, "duplicate_keys": 1, "extra_rows": 1}
    assert len(result.failures) == 2
    assert result.failures["ts"].nunique() == 1


# --------------------------------------------------------------------------------------- staleness


def test_staleness_passes_on_fresh_real_bars() -> None:
    now = pd.Timestamp("2022-05-11 10:30", tz=UTC)
    prices = data.real_prices()
    known = prices.loc[prices["ts"] + pd.Timedelta(hours=1) <= now]
    result = q.staleness(known, now, symbols=UNIVERSE)
    assert result.passed
    assert result.metrics["oldest_newest_bar_age_hours"] == 0.5


def test_staleness_fails_when_the_newest_bar_is_old() -> None:
    now = pd.Timestamp("2022-05-11 10:30", tz=UTC)
    prices = data.real_prices()
    known = prices.loc[prices["ts"] + pd.Timedelta(hours=1) <= now]
    stale = known.loc[~((known["symbol"] == "ETH") & (known["ts"] >= pd.Timestamp("2022-05-11 07:00", tz=UTC)))]
    result = q.staleness(stale, now, max_age=timedelta(hours=2), symbols=UNIVERSE)
    assert not result.passed and result.blocking
    assert result.failures["symbol"].tolist() == ["ETH"]
    assert result.failures["age_hours"].iloc[0] == 3.5  # newest ETH bar 06:00 closed at 07:00
    assert result.metrics["age_hours_by_symbol"]["BTC"] == 0.5


def test_staleness_judges_a_finished_day_at_its_end_and_flags_absent_symbols() -> None:
    day = _day(data.real_prices())
    much_later = NEXT_DAY + pd.Timedelta(days=30)
    assert not q.staleness(day, much_later).passed
    assert q.staleness(day, much_later, partition_end=NEXT_DAY).passed
    result = q.staleness(day, much_later, partition_end=NEXT_DAY, symbols=[*UNIVERSE, "DOGE"])
    assert not result.passed
    assert result.failures["symbol"].tolist() == ["DOGE"]
    assert not q.staleness(day.iloc[:0], NEXT_DAY).passed


# ---------------------------------------------------------------------------------- cross-provider


def _secondary(prices: pd.DataFrame, shift: float) -> pd.DataFrame:
    """A second provider's sample: every 6th real bar, close shifted by ``shift`` (crafted, see module doc)."""
    sample = prices.iloc[::6].copy()
    sample["close"] = sample["close"] * (1 + shift)
    return sample.assign(provider="coinbase")


def test_cross_provider_accuracy_passes_within_tolerance() -> None:
    prices = _day(data.real_prices())
    result = q.cross_provider_accuracy(prices, _secondary(prices, 0.002), tolerance=0.01)
    assert result.passed and not result.skipped
    assert result.metrics["sampled"] == 24
    assert result.metrics["max_rel_deviation"] == pytest.approx(0.002)
    assert result.metrics["mean_rel_deviation"] == pytest.approx(0.002)
    assert result.metrics["ratio"] == 1.0
    assert result.metrics["secondary_provider"] == "coinbase"


def test_cross_provider_accuracy_fails_on_a_5_percent_disagreement() -> None:
    prices = _day(data.real_prices())
    secondary = _secondary(prices, 0.0)
    bad = secondary.index[3]
    secondary.loc[bad, "close"] = prices.loc[bad, "close"] * 1.05
    result = q.cross_provider_accuracy(prices, secondary, tolerance=0.01)
    assert not result.passed and result.blocking
    assert result.metrics["within_tolerance"] == 23
    assert result.metrics["max_rel_deviation"] == pytest.approx(0.05)
    assert result.failures[["symbol", "ts"]].to_dict("records") == [prices.loc[bad, ["symbol", "ts"]].to_dict()]
    assert q.cross_provider_accuracy(prices, secondary, tolerance=0.01, max_bad_share=0.05).passed


def test_cross_provider_accuracy_is_skipped_without_a_sample() -> None:
    prices = _day(data.real_prices())
    result = q.cross_provider_accuracy(prices, prices.iloc[:0])
    assert result.skipped and result.passed and not result.blocking
    assert result.metrics["reason"] == "no secondary-provider sample"
    other_day = _secondary(_day(data.real_prices(), DAY - pd.Timedelta(days=3)), 0.0)
    result = q.cross_provider_accuracy(prices, other_day)
    assert result.skipped and "no (symbol, ts)" in result.metrics["reason"]


# --------------------------------------------------------------------------------- return anomalies


def test_return_anomalies_flag_the_real_luna_crash_as_a_warning() -> None:
    result = q.return_anomalies(data.real_prices(), z=6.0)
    assert not result.passed
    assert result.severity == "warn" and not result.blocking
    crash = pd.Timestamp("2022-05-11 12:00", tz=UTC)
    flagged_at_crash = set(result.failures.loc[result.failures["ts"] == crash, "symbol"])
    assert flagged_at_crash == set(UNIVERSE)  # the 7-19 % hourly drop of every coin
    assert (result.failures["robust_z"].abs() > 6).all()
    assert result.metrics["max_abs_robust_z"] > 10


def test_return_anomalies_since_and_injected_spike() -> None:
    prices = data.real_prices()
    # Real look-back for the statistics, flags reported from the partition only.
    calm_day = pd.Timestamp("2022-05-13", tz=UTC)
    assert q.return_anomalies(prices, since=calm_day).passed
    spiked = prices.copy()
    row = spiked.index[(spiked["symbol"] == "BTC") & (spiked["ts"] == calm_day + pd.Timedelta(hours=5))][0]
    spiked.loc[row, ["open", "high", "low", "close"]] *= 1.3
    result = q.return_anomalies(spiked, since=calm_day)
    assert result.failures["symbol"].tolist() == ["BTC", "BTC"]  # the jump up and the return down
    assert result.metrics["flagged_by_symbol"] == {"BTC": 2}


def test_return_anomalies_ignore_returns_across_gaps_and_short_series() -> None:
    prices = data.real_prices()
    btc = prices.loc[prices["symbol"] == "BTC"]
    gapped = btc.loc[
        (btc["ts"] < pd.Timestamp("2022-05-06", tz=UTC)) | (btc["ts"] > pd.Timestamp("2022-05-09", tz=UTC))
    ]
    returns = q.hourly_log_returns(gapped)
    assert returns.isna().sum() == 2  # the first bar and the bar after the gap
    short = q.return_anomalies(btc.head(10))
    assert short.passed and short.metrics["symbols_too_short"] == ["BTC"]


# --------------------------------------------------------------------------------------------- news


def test_news_rules_on_real_news() -> None:
    news = data.real_news()
    now = pd.Timestamp("2022-05-13", tz=UTC)
    assert q.duplicate_articles(news).passed
    assert q.future_articles(news, now).passed
    empty = q.empty_titles(news)
    # The real data holds one item without a title (2022-05-09 13:00, CoinTelegraph): a warning.
    assert not empty.passed and empty.severity == "warn" and not empty.blocking
    assert empty.failures["published_at"].tolist() == [pd.Timestamp("2022-05-09 13:00", tz=UTC)]
    assert empty.failures["source"].tolist() == ["CoinTelegraph"]
    assert q.empty_titles(news.loc[news["title"].str.strip() != ""]).passed


def test_duplicate_articles_fail() -> None:
    news = data.real_news()
    repeated = pd.concat([news, news.iloc[[5]]], ignore_index=True)
    result = q.duplicate_articles(repeated)
    assert not result.passed and result.blocking
    assert result.metrics["repeated_id_rows"] == 1
    same_url = news.copy()
    with_url = same_url.index[same_url["url"] != ""]
    same_url.loc[with_url[1], "url"] = same_url.loc[with_url[0], "url"]
    result = q.duplicate_articles(same_url)
    assert not result.passed
    assert result.metrics == {"rows": len(news), "repeated_id_rows": 0, "urls_with_several_ids": 1}
    assert set(result.failures["problem"]) == {"same url, different article_id"}


def test_future_articles_fail() -> None:
    news = data.real_news()
    now = pd.Timestamp("2022-05-13", tz=UTC)
    news.loc[news.index[0], "published_at"] = now + pd.Timedelta(days=2)
    result = q.future_articles(news, now)
    assert not result.passed and result.blocking
    assert result.failures["article_id"].tolist() == [news.loc[news.index[0], "article_id"]]
    assert q.future_articles(news, now, tolerance=timedelta(days=3)).passed


# Real daily article counts of the bundled news.csv (2022-06-12 .. 2022-07-05, UTC days): the Kaggle
# source ends on 2022-07-05, so that day is thin; weekends dip to about a third.
REAL_DAILY_COUNTS = pd.Series(
    [33, 85, 79, 76, 79, 69, 33, 27, 72, 79, 68, 70, 60, 21, 19, 65, 71, 74, 75, 70, 33, 32, 50, 12],
    index=pd.date_range("2022-06-12", "2022-07-05", freq="D", tz=UTC),
)


def test_news_volume_anomaly_on_real_counts() -> None:
    thin = q.news_volume_anomaly(REAL_DAILY_COUNTS, "2022-07-05")
    assert not thin.passed and thin.severity == "warn" and not thin.blocking
    assert thin.metrics["count"] == 12 and thin.metrics["trailing_median"] == 66.5
    sunday = q.news_volume_anomaly(REAL_DAILY_COUNTS, "2022-06-26")
    assert sunday.passed  # 19 articles vs a median of 69.5: a weekend, not an outage
    assert sunday.metrics["ratio"] == pytest.approx(19 / 69.5)
    assert q.news_volume_anomaly(REAL_DAILY_COUNTS, "2022-06-27").passed


def test_news_volume_anomaly_counts_absent_days_as_zero_and_skips_short_history() -> None:
    counts = REAL_DAILY_COUNTS.drop(pd.Timestamp("2022-07-04", tz=UTC))
    result = q.news_volume_anomaly(counts, pd.Timestamp("2022-07-04", tz=UTC))
    assert not result.passed and result.metrics["count"] == 0
    news = data.real_news()
    daily = news.groupby(news["published_at"].dt.floor("D")).size()
    short = q.news_volume_anomaly(daily, "2022-05-12")
    assert short.skipped and short.passed and "history" in short.metrics["reason"]


def test_news_volume_by_day_flags_the_days_the_one_day_rule_flags() -> None:
    """The raw/news check scores every day at once; each day's verdict is the one-day rule's."""
    daily = REAL_DAILY_COUNTS.drop(pd.Timestamp("2022-06-20", tz=UTC))  # an absent day counts 0
    table = q.news_volume_by_day(daily)
    assert len(table) == 24 and table["checked"].sum() == 17  # the first 7 days lack history
    verdicts = {day: not q.news_volume_anomaly(daily, day).passed for day in table.index}
    assert table["thin"].to_dict() == verdicts
    assert table.loc["2022-07-05", "thin"] and table["thin"].sum() == sum(verdicts.values()) > 0


# ---------------------------------------------------------------------------------- features/training


def test_leakage_guard_passes_on_a_real_shaped_training_set() -> None:
    training = data.training_set()
    result = q.leakage_guard(training)
    assert result.passed
    assert result.metrics["pairs_checked"] > 800
    assert q.leakage_guard(training.assign(label_ts=training["ts"] + pd.Timedelta(hours=1))).passed


def test_leakage_guard_catches_a_same_bar_label() -> None:
    training = data.training_set()
    leaked = training.assign(target_log_return_1h=training["log_return_1h"])
    leaked["target_up_1h"] = leaked["target_log_return_1h"] > 0
    result = q.leakage_guard(leaked)
    assert not result.passed and result.blocking
    assert result.metrics["labels_not_next_bar_return"] > 800
    # With one row per symbol there are no next-bar pairs: equality with the own bar's return is the tell.
    single = leaked.groupby("symbol").head(1)
    result = q.leakage_guard(single)
    assert not result.passed
    assert set(result.failures["problem"]) == {"label == same bar's log_return_1h"}


def test_leakage_guard_with_label_ts_and_up_label() -> None:
    training = data.training_set()
    same_time = q.leakage_guard(training.assign(label_ts=training["ts"]))
    assert not same_time.passed and same_time.metrics["label_not_after_feature"] == len(training)
    flipped = training.copy()
    flipped.loc[flipped.index[0], "target_up_1h"] = not flipped.loc[flipped.index[0], "target_up_1h"]
    result = q.leakage_guard(flipped)
    assert not result.passed and result.metrics["up_label_mismatches"] == 1
    assert q.leakage_guard(training.drop(columns=["log_return_1h"])).skipped


def test_null_rates_after_warmup() -> None:
    features = data.feature_vectors()
    result = q.null_rates(features, warmup_bars=35)
    assert result.passed, result.failures
    assert result.metrics["rows_after_warmup"] == (240 - 35) * 6
    # Without the warm-up, the real leading nulls of the windowed features show.
    cold = q.null_rates(features, warmup_bars=0)
    assert not cold.passed
    assert {"rsi_14", "macd_hist_norm", "btc_corr_24h"} <= set(cold.failures["feature"])
    assert "hour_sin" not in set(cold.failures["feature"])


def test_null_rates_fail_on_nulls_after_warmup() -> None:
    features = data.feature_vectors()
    late = features.groupby("symbol").cumcount() >= 100
    holes = features.index[late & (features["symbol"] == "SOL")][:20]
    features.loc[holes, "btc_corr_24h"] = np.nan
    result = q.null_rates(features, warmup_bars=35)
    assert not result.passed and result.blocking
    assert result.failures["feature"].tolist() == ["btc_corr_24h"]
    assert result.failures["null_rate"].iloc[0] == pytest.approx(20 / ((240 - 35) * 6))
    missing = q.null_rates(features.drop(columns=["vwap_dev_24h"]), max_null_rate=0.01)
    assert "vwap_dev_24h" in set(missing.failures["feature"])


def _features_with_genuine_gaps() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real features of the 6 symbols, built by the pipeline's own functions from the real bars with gaps cut
    out (BTC 2022-05-08 10:00-12:00, SOL 2022-05-10 05:00) and real articles whose news coverage has a hole
    (no successful answer for 2022-05-11 00:00 to 2022-05-12 12:00)."""
    from crypto_assets.transforms.features import build_feature_vectors
    from crypto_assets.transforms.indicators import technical_indicators
    from crypto_assets.transforms.sentiment import sentiment_hourly

    prices = data.real_prices()
    hole = (prices["symbol"] == "BTC") & prices["ts"].between("2022-05-08 10:00Z", "2022-05-08 12:00Z")
    hole |= (prices["symbol"] == "SOL") & (prices["ts"] == pd.Timestamp("2022-05-10 05:00Z"))
    bars = prices[~hole].reset_index(drop=True)
    answers = data.news_coverage()  # the 9th-12th answered, one failed RSS fetch
    # Say the 4th-10th were answered too, the 11th failed, and a fetch at noon on the 12th covered the rest.
    answers = answers[answers["window_start"] < pd.Timestamp("2022-05-11", tz=UTC)]
    answers.loc[answers.index[0], "window_start"] = pd.Timestamp("2022-05-04", tz=UTC)
    late = answers.iloc[[0]].assign(
        window_start=pd.Timestamp("2022-05-12 12:00Z"), window_end=pd.Timestamp("2022-05-14 00:00Z")
    )
    answers = pd.concat([answers, late], ignore_index=True)
    sentiment = sentiment_hourly(bars[["symbol", "ts"]], data.article_sentiment(), answers)
    features = build_feature_vectors(bars, technical_indicators(bars), sentiment)
    return features, bars


def test_null_rates_never_count_a_genuine_gap() -> None:
    from crypto_assets.defs.quality import warmed_up

    features, bars = _features_with_genuine_gaps()
    validate_frame("features.feature_vectors", features)
    # Every gap is real: without knowing which windows are complete, the nulls look like defects.
    blind = q.null_rates(features, warmup_bars=35)
    assert not blind.passed
    assert {"btc_corr_24h", "rsi_14", "vwap_dev_24h", "sentiment_mean_24h"} <= set(blind.failures["feature"])
    judged = warmed_up(features, bars)
    result = q.null_rates(features, warmup_bars=0, judged=judged)
    assert result.passed, result.failures
    assert set(result.metrics["null_rates"].values()) == {0.0}
    # ETH's cross-asset features wait for BTC's window; its own features are judged on those rows
    eth = (features["symbol"] == "ETH") & features["ts"].between("2022-05-08 10:00Z", "2022-05-09 12:00Z")
    assert features.loc[eth, "btc_corr_24h"].isna().all() and not judged.loc[eth, "btc_corr_24h"].any()
    assert features.loc[eth, "log_return_1h"].notna().all() and judged.loc[eth, "log_return_1h"].all()
    # no news coverage for 36 hours: the bars from the 11th 23:00 to the 12th 11:00 have nothing covered
    uncovered = features["news_coverage_24h"] == 0
    assert uncovered.sum() == 6 * 13 and not judged.loc[uncovered, "sentiment_mean_24h"].any()
    assert judged.loc[~uncovered, "sentiment_mean_24h"].all()
    # the rows judged: everything after the 35-bar warm-up except the gaps' windows
    assert result.metrics["rows_judged"]["hour_sin"] == len(features)
    # 240 bars (BTC 237, SOL 239) minus the 35 of the warm-up, minus the 23 bars after each gap whose window holds it
    assert result.metrics["rows_judged"]["rsi_14"] == 4 * 205 + 202 + 204 - 23 - 23


def test_null_rates_still_fail_on_nulls_inside_complete_windows() -> None:
    from crypto_assets.defs.quality import warmed_up

    features, bars = _features_with_genuine_gaps()
    judged = warmed_up(features, bars)
    rows = features.index[judged["vwap_dev_24h"] & (features["symbol"] == "XRP")][:20]
    features.loc[rows, "vwap_dev_24h"] = np.nan
    covered = features.index[judged["news_volume_24h"] & (features["symbol"] == "ADA")][:30]
    features.loc[covered, "news_volume_24h"] = np.nan
    result = q.null_rates(features, warmup_bars=0, judged=judged)
    assert not result.passed and result.blocking
    assert result.failures["feature"].tolist() == ["vwap_dev_24h", "news_volume_24h"]
    vwap = result.failures.set_index("feature").loc["vwap_dev_24h"]
    assert vwap["nulls"] == 20 and vwap["null_rate"] == pytest.approx(20 / vwap["rows"])
    assert "on the rows whose lag or window is complete" in result.description


def test_splits_purged_passes_on_a_purged_split() -> None:
    training = data.training_set(purge_bars=24)
    result = q.splits_purged(training, purge_bars=24)
    assert result.passed, result.failures
    assert result.metrics["gap_hours"] == {"train->valid": 25.0, "valid->test": 25.0}
    assert set(result.metrics["rows_by_split"]) == {"train", "valid", "test"}


def test_splits_purged_fails_without_purge_overlap_or_order() -> None:
    unpurged = q.splits_purged(data.training_set(purge_bars=0), purge_bars=24)
    assert not unpurged.passed and unpurged.blocking
    assert unpurged.failures["boundary"].tolist() == ["train->valid", "valid->test"]
    assert unpurged.failures["gap_hours"].tolist() == [1.0, 1.0]

    training = data.training_set()
    overlap = training.copy()
    first_valid = overlap.index[overlap["split"] == "valid"][0]
    overlap.loc[first_valid, "split"] = "train"  # one symbol's valid bar labelled train
    result = q.splits_purged(overlap)
    assert not result.passed
    assert result.metrics["ts_in_several_splits"] == 1

    swapped = training.assign(split=training["split"].map({"train": "test", "test": "train", "valid": "valid"}))
    result = q.splits_purged(swapped)
    assert "overlap or out of order" in set(result.failures["problem"])

    unknown = training.assign(split=training["split"].replace({"valid": "holdout"}))
    assert not q.splits_purged(unknown).passed


# ------------------------------------------------------------------------------------------- score


def test_quality_score_formula() -> None:
    assert q.quality_score(1.0, 1.0, 1.0)["overall_score"] == 100.0
    score = q.quality_score(0.9, 0.8, 0.5)
    assert score["completeness_score"] == pytest.approx(90.0)
    assert score["consistency_score"] == pytest.approx(80.0)
    assert score["accuracy_score"] == pytest.approx(50.0)
    assert score["overall_score"] == pytest.approx(0.5 * 90 + 0.3 * 80 + 0.2 * 50)  # 79
    assert score["weights"] == {"completeness": 0.5, "consistency": 0.3, "accuracy": 0.2}
    without = q.quality_score(0.9, 0.8)
    assert without["accuracy_score"] is None
    assert without["overall_score"] == pytest.approx(0.625 * 90 + 0.375 * 80)  # 86.25
    assert without["weights"] == pytest.approx({"completeness": 0.625, "consistency": 0.375})
    with pytest.raises(ValueError, match=r"share in \[0, 1\]"):
        q.quality_score(95, 1.0)


def test_quality_score_from_rule_results() -> None:
    prices = _day(data.real_prices())
    missing_one = prices.drop(index=prices.index[0])
    comp = q.completeness(missing_one, DAY, NEXT_DAY, UNIVERSE, now=NEXT_DAY)
    secondary = _secondary(prices, 0.0)
    secondary.loc[secondary.index[1], "close"] *= 1.05
    acc = q.cross_provider_accuracy(prices, secondary)
    skipped = q.cross_provider_accuracy(prices, prices.iloc[:0])
    consistency = q.consistency_ratio(missing_one)
    score = q.quality_score(comp, consistency, acc)
    assert score["completeness_score"] == pytest.approx(100 * 143 / 144)
    assert score["consistency_score"] == 100.0
    assert score["accuracy_score"] == pytest.approx(100 * 23 / 24)
    assert q.quality_score(comp, consistency, skipped) == q.quality_score(comp, consistency, None)


def test_consistency_ratio_counts_bad_and_duplicate_bars() -> None:
    prices = _day(data.real_prices())  # 144 real bars
    prices.loc[prices.index[0], "high"] = prices.loc[prices.index[0], "low"] * 0.99
    with_dup = pd.concat([prices, prices.iloc[[50]]], ignore_index=True)  # 145 rows
    assert q.consistency_ratio(with_dup) == pytest.approx(143 / 145)
    assert q.consistency_ratio(prices.iloc[:0]) == 1.0


def test_partition_score_rows_match_the_table_model() -> None:
    prices = _day(data.real_prices())
    gone = (prices["symbol"] == "XRP") & (prices["ts"] == pd.Timestamp("2022-05-11 05:00", tz=UTC))
    prices = prices.loc[~gone]
    secondary = _secondary(prices.reset_index(drop=True), 0.0)
    secondary.loc[secondary["symbol"] == "BTC", "close"] *= 1.05
    rows = q.partition_score_rows(
        prices, partition_key="2022-05-11", symbols=UNIVERSE, now=NEXT_DAY, secondary=secondary
    )
    validate_frame("quality.partition_scores", rows)
    by = rows.set_index("symbol")
    assert list(by.index) == [*UNIVERSE, "*"]
    assert by.loc["XRP", "bars_present"] == 23 and by.loc["XRP", "completeness_score"] == pytest.approx(100 * 23 / 24)
    assert by.loc["ETH", "overall_score"] == 100.0
    btc = by.loc["BTC"]
    assert btc["bars_sampled"] == (secondary["symbol"] == "BTC").sum() > 0
    assert btc["accuracy_score"] == 0.0
    assert btc["overall_score"] == pytest.approx(0.5 * 100 + 0.3 * 100 + 0.2 * 0)
    assert by.loc["*", "bars_expected"] == 144 and by.loc["*", "bars_present"] == 143
    no_sample = q.partition_score_rows(prices, partition_key="2022-05-11", symbols=UNIVERSE, now=NEXT_DAY)
    assert no_sample["accuracy_score"].isna().all()
    assert no_sample.set_index("symbol").loc["XRP", "overall_score"] == pytest.approx(
        0.625 * 100 * 23 / 24 + 0.375 * 100
    )


def test_feature_columns_are_the_ones_null_rates_checks() -> None:
    result = q.null_rates(data.feature_vectors(), warmup_bars=35)
    assert list(result.metrics["null_rates"]) == list(FEATURE_COLUMNS)
