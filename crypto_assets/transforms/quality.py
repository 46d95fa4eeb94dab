"""Data-quality rules and the partition quality score, as pure vectorised functions.

Each rule takes DataFrames in the contract's shapes and returns a ``RuleResult``; wiring them into
Dagster asset checks happens elsewhere. ``severity="error"`` marks a rule whose failure must block
downstream assets; ``"warn"`` rules only flag (``RuleResult.blocking`` tells which applies).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from crypto_assets.schemas import ALL_SYMBOLS, FEATURE_COLUMNS, SPLITS
from crypto_assets.timegrid import consecutive_runs
from crypto_assets.transforms.news import covered_hours

Severity = Literal["error", "warn"]
HOUR = pd.Timedelta(hours=1)
MAX_FAILURE_ROWS = 20

# Weights of the overall score (see quality_score).
WEIGHTS: dict[str, float] = {"completeness": 0.5, "consistency": 0.3, "accuracy": 0.2}


@dataclass
class RuleResult:
    """Outcome of one rule. ``failures`` holds the first offending records, ``metrics`` the counts."""

    passed: bool
    severity: Severity
    description: str
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    skipped: bool = False

    @property
    def blocking(self) -> bool:
        """True when this result must stop downstream assets."""
        return not self.passed and self.severity == "error"


def _utc(value: datetime | pd.Timestamp | str, what: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {stamp}")
    return stamp.tz_convert("UTC")


def _head(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    return frame.head(max_rows).reset_index(drop=True)


def _skipped(name: str, severity: Severity, reason: str, **metrics: Any) -> RuleResult:
    return RuleResult(
        passed=True,
        severity=severity,
        description=f"skipped: {reason}",
        metrics={"skipped": True, "reason": reason, **metrics},
        name=name,
        skipped=True,
    )


# --------------------------------------------------------------------------------------------- prices


def _ohlc_ok(prices: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    body_low = np.minimum(prices["open"], prices["close"])
    body_high = np.maximum(prices["open"], prices["close"])
    return prices["low"] <= body_low, body_high <= prices["high"], prices["low"] <= prices["high"]


def ohlc_consistency(prices: pd.DataFrame, *, max_rows: int = MAX_FAILURE_ROWS) -> RuleResult:
    """Every bar has low <= min(open, close), max(open, close) <= high and low <= high (NaN fails)."""
    low_ok, high_ok, range_ok = _ohlc_ok(prices)
    bad = ~(low_ok & high_ok & range_ok)
    problems = np.select(
        [~range_ok, ~low_ok, ~high_ok],
        ["high < low", "low above open/close", "high below open/close"],
        default="",
    )
    failures = prices.loc[bad, ["symbol", "ts", "open", "high", "low", "close"]].assign(
        problem=problems[bad.to_numpy()]
    )
    n_bad = int(bad.sum())
    rows = len(prices)
    return RuleResult(
        passed=n_bad == 0,
        severity="error",
        description=f"{n_bad} of {rows} bars break low <= open, close <= high",
        failures=_head(failures, max_rows),
        metrics={"rows": rows, "bad_rows": n_bad, "ratio": 1.0 if rows == 0 else (rows - n_bad) / rows},
        name="ohlc_consistency",
    )


def expected_bar_times(
    day_start: datetime | pd.Timestamp, day_end: datetime | pd.Timestamp, now: datetime | pd.Timestamp
) -> pd.DatetimeIndex:
    """Open times of the hourly bars in [day_start, day_end) that are closed (ts + 1h <= now)."""
    start, end, now_ = _utc(day_start, "day_start"), _utc(day_end, "day_end"), _utc(now, "now")
    first = start.ceil("h")
    last_closed = (now_ - HOUR).floor("h")
    stop = min(end - pd.Timedelta(1, "ns"), last_closed)
    if stop < first:
        return pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="ts")
    return pd.date_range(first, stop.floor("h"), freq="h", name="ts").as_unit("ns")


def completeness(
    prices: pd.DataFrame,
    day_start: datetime | pd.Timestamp,
    day_end: datetime | pd.Timestamp,
    symbols: Sequence[str],
    now: datetime | pd.Timestamp,
    *,
    max_rows: int = MAX_FAILURE_ROWS,
) -> RuleResult:
    """Every symbol has a bar for every hour of [day_start, day_end) that has closed by ``now``.

    A full past UTC day expects 24 bars per symbol; today's partition expects only the closed hours.
    ``failures`` lists missing (symbol, ts); ``metrics["ratio"]`` = present / expected (1.0 when nothing is due).
    """
    hours = expected_bar_times(day_start, day_end, now)
    expected = pd.MultiIndex.from_product([list(symbols), hours], names=["symbol", "ts"])
    have = pd.MultiIndex.from_frame(prices[["symbol", "ts"]]) if len(prices) else expected[:0]
    missing = expected.difference(have, sort=False)
    present = len(expected) - len(missing)
    missing_frame = missing.to_frame(index=False).sort_values(["symbol", "ts"])
    by_symbol = missing_frame.groupby("symbol").size().reindex(list(symbols), fill_value=0)
    total = len(expected)
    return RuleResult(
        passed=len(missing) == 0,
        severity="error",
        description=f"{present} of {total} expected hourly bars present ({len(missing)} missing)",
        failures=_head(missing_frame, max_rows),
        metrics={
            "expected": total,
            "present": present,
            "missing": len(missing),
            "ratio": 1.0 if total == 0 else present / total,
            "missing_by_symbol": {k: int(v) for k, v in by_symbol.items()},
            "unexpected": int((~have.isin(expected)).sum()),
        },
        name="completeness",
    )


def duplicate_bars(prices: pd.DataFrame, *, max_rows: int = MAX_FAILURE_ROWS) -> RuleResult:
    """No two bars share (symbol, ts)."""
    dup_all = prices.duplicated(["symbol", "ts"], keep=False)
    extra = int(prices.duplicated(["symbol", "ts"], keep="first").sum())
    failures = prices.loc[dup_all].sort_values(["symbol", "ts"])
    keys = int(failures[["symbol", "ts"]].drop_duplicates().shape[0])
    return RuleResult(
        passed=extra == 0,
        severity="error",
        description=f"{keys} (symbol, ts) keys have more than one bar ({extra} extra rows)",
        failures=_head(failures, max_rows),
        metrics={"rows": len(prices), "duplicate_keys": keys, "extra_rows": extra},
        name="duplicate_bars",
    )


def staleness(
    prices: pd.DataFrame,
    now: datetime | pd.Timestamp,
    max_age: timedelta = timedelta(hours=2),
    *,
    symbols: Sequence[str] | None = None,
    partition_end: datetime | pd.Timestamp | None = None,
) -> RuleResult:
    """The newest bar of each symbol closed at most ``max_age`` before the reference time.

    Age = reference - (newest ts + 1h), reference = ``now``, or ``partition_end`` when that is earlier (a
    finished day is judged at its end, not by how long ago it was). A symbol in ``symbols`` without any bar
    counts as stale.
    """
    reference = _utc(now, "now")
    if partition_end is not None:
        reference = min(reference, _utc(partition_end, "partition_end"))
    newest = prices.groupby("symbol")["ts"].max() if len(prices) else pd.Series(dtype="datetime64[ns, UTC]")
    if symbols is not None:
        newest = newest.reindex(list(symbols))
    age = reference - (newest + HOUR)
    ages = pd.DataFrame({"symbol": newest.index, "newest_ts": newest.to_numpy(), "age": age.to_numpy()})
    ages["age_hours"] = ages["age"].dt.total_seconds() / 3600
    stale = ages["newest_ts"].isna() | (ages["age"] > pd.Timedelta(max_age))
    failures = ages.loc[stale, ["symbol", "newest_ts", "age_hours"]]
    worst = ages["age_hours"].max() if len(ages) else None
    if len(ages) == 0:
        desc = "no bars at all"
    else:
        desc = f"{int(stale.sum())} of {len(ages)} symbols have no bar closed within {max_age} of {reference}"
    return RuleResult(
        passed=len(ages) > 0 and not bool(stale.any()),
        severity="error",
        description=desc,
        failures=failures.reset_index(drop=True),
        metrics={
            "reference": reference.isoformat(),
            "max_age_hours": pd.Timedelta(max_age).total_seconds() / 3600,
            "oldest_newest_bar_age_hours": None if worst is None or pd.isna(worst) else float(worst),
            "age_hours_by_symbol": {
                s: (None if pd.isna(h) else float(h)) for s, h in zip(ages["symbol"], ages["age_hours"], strict=True)
            },
        },
        name="staleness",
    )


def cross_provider_accuracy(
    primary: pd.DataFrame,
    secondary: pd.DataFrame,
    tolerance: float = 0.01,
    *,
    max_bad_share: float = 0.0,
    severity: Severity = "error",
    max_rows: int = MAX_FAILURE_ROWS,
) -> RuleResult:
    """Sampled bars of a second provider agree with the stored close within ``tolerance`` (relative).

    Deviation = |close_secondary - close_primary| / close_primary on the (symbol, ts) both have. Fails when
    more than ``max_bad_share`` of them deviate by more than ``tolerance``; skipped (passed, with the
    reason) when the secondary sample is empty or shares no bar with the primary.
    """
    name = "cross_provider_accuracy"
    if secondary is None or len(secondary) == 0:
        return _skipped(name, severity, "no secondary-provider sample", tolerance=tolerance, sampled=0)
    pair = primary[["symbol", "ts", "close"]].merge(
        secondary[["symbol", "ts", "close"]], on=["symbol", "ts"], suffixes=("_primary", "_secondary")
    )
    if pair.empty:
        return _skipped(
            name,
            severity,
            "secondary sample shares no (symbol, ts) with the primary bars",
            tolerance=tolerance,
            sampled=0,
        )
    pair["rel_deviation"] = (pair["close_secondary"] - pair["close_primary"]).abs() / pair["close_primary"]
    bad = ~(pair["rel_deviation"] <= tolerance)
    n, n_bad = len(pair), int(bad.sum())
    metrics: dict[str, Any] = {
        "sampled": n,
        "within_tolerance": n - n_bad,
        "ratio": (n - n_bad) / n,
        "max_rel_deviation": float(pair["rel_deviation"].max()),
        "mean_rel_deviation": float(pair["rel_deviation"].mean()),
        "tolerance": tolerance,
    }
    for label, frame in (("primary_provider", primary), ("secondary_provider", secondary)):
        if "provider" in frame.columns:
            metrics[label] = ",".join(sorted(map(str, frame["provider"].dropna().unique())))
    failures = pair.loc[bad].sort_values("rel_deviation", ascending=False)
    return RuleResult(
        passed=n_bad / n <= max_bad_share,
        severity=severity,
        description=(
            f"{n_bad} of {n} sampled bars deviate more than {tolerance:.2%} from the second provider "
            f"(max {metrics['max_rel_deviation']:.3%})"
        ),
        failures=_head(failures, max_rows),
        metrics=metrics,
        name=name,
    )


def hourly_log_returns(prices: pd.DataFrame) -> pd.Series:
    """ln(close_t / close_t-1) per symbol, only between bars exactly one hour apart (NaN across gaps)."""
    ordered = prices.sort_values(["symbol", "ts"])
    by_symbol = ordered.groupby("symbol", sort=False)
    ret = np.log(ordered["close"]) - np.log(by_symbol["close"].shift(1))
    gap = ordered["ts"] - by_symbol["ts"].shift(1)
    return ret.where(gap == HOUR).reindex(prices.index)


def return_anomalies(
    prices: pd.DataFrame,
    z: float = 6.0,
    *,
    iqr_k: float = 3.0,
    since: datetime | pd.Timestamp | None = None,
    min_returns: int = 24,
    max_rows: int = MAX_FAILURE_ROWS,
) -> RuleResult:
    """Flag hourly log returns that are extreme for their symbol (severity "warn": flags, never blocks).

    Robust z = 0.6745 * (r - median) / MAD per symbol (MAD = median absolute deviation; when it is 0 the
    mean absolute deviation * 1.2533 stands in). A return is flagged when |robust z| > ``z`` AND it lies
    outside the IQR fences [Q1 - iqr_k * IQR, Q3 + iqr_k * IQR]. Statistics use every bar given (pass
    look-back); ``since`` limits the reported flags to ts >= since. Symbols with fewer than
    ``min_returns`` returns are not judged. Real crashes are flagged too: they are real, hence "warn".
    """
    frame = prices[["symbol", "ts", "close"]].copy()
    frame["log_return"] = hourly_log_returns(prices)
    grouped = frame.groupby("symbol")["log_return"]
    count = grouped.transform("count")
    median = grouped.transform("median")
    abs_dev = (frame["log_return"] - median).abs()
    mad = abs_dev.groupby(frame["symbol"]).transform("median")
    mean_ad = abs_dev.groupby(frame["symbol"]).transform("mean")
    scale = mad.where(mad > 0, mean_ad * 1.2533 * 0.6745)
    frame["robust_z"] = (0.6745 * (frame["log_return"] - median) / scale).where(scale > 0, 0.0)
    q1, q3 = grouped.transform("quantile", 0.25), grouped.transform("quantile", 0.75)
    frame["fence_low"] = q1 - iqr_k * (q3 - q1)
    frame["fence_high"] = q3 + iqr_k * (q3 - q1)
    outside = (frame["log_return"] < frame["fence_low"]) | (frame["log_return"] > frame["fence_high"])
    judged = count >= min_returns
    flagged = judged & (frame["robust_z"].abs() > z) & outside
    if since is not None:
        flagged &= frame["ts"] >= _utc(since, "since")
    failures = frame.loc[flagged].sort_values("robust_z", key=np.abs, ascending=False)
    failures = failures[["symbol", "ts", "close", "log_return", "robust_z", "fence_low", "fence_high"]]
    by_symbol = failures.groupby("symbol").size()
    return RuleResult(
        passed=failures.empty,
        severity="warn",
        description=f"{len(failures)} hourly returns beyond robust z {z:g} and the IQR fences (k={iqr_k:g})",
        failures=_head(failures, max_rows),
        metrics={
            "flagged": len(failures),
            "flagged_by_symbol": {k: int(v) for k, v in by_symbol.items()},
            "symbols_too_short": sorted(frame.loc[~judged, "symbol"].unique().tolist()),
            "z": z,
            "iqr_k": iqr_k,
            "max_abs_robust_z": float(failures["robust_z"].abs().max()) if len(failures) else 0.0,
        },
        name="return_anomalies",
    )


# ----------------------------------------------------------------------------------------------- news


def duplicate_articles(news: pd.DataFrame, *, max_rows: int = MAX_FAILURE_ROWS) -> RuleResult:
    """No repeated article_id, and no URL stored under two article_ids (ids must be stable per URL)."""
    dup_id = news.duplicated("article_id", keep=False)
    url = news["url"].fillna("").str.strip()
    with_url = news.loc[url != ""].assign(_url=url[url != ""])
    ids_per_url = with_url.groupby("_url")["article_id"].transform("nunique")
    dup_url = pd.Series(False, index=news.index)
    dup_url.loc[with_url.index] = ids_per_url > 1
    bad = dup_id | dup_url
    problem = np.where(dup_id[bad], "repeated article_id", "same url, different article_id")
    failures = news.loc[bad, ["article_id", "published_at", "source", "title", "url"]].assign(problem=problem)
    n_id = int(news.duplicated("article_id", keep="first").sum())
    n_url = int(with_url.loc[ids_per_url > 1, "_url"].nunique())
    return RuleResult(
        passed=not bool(bad.any()),
        severity="error",
        description=f"{n_id} repeated article_id rows, {n_url} URLs stored under several ids",
        failures=_head(failures.sort_values(["problem", "url", "article_id"]), max_rows),
        metrics={"rows": len(news), "repeated_id_rows": n_id, "urls_with_several_ids": n_url},
        name="duplicate_articles",
    )


def future_articles(
    news: pd.DataFrame,
    now: datetime | pd.Timestamp,
    *,
    tolerance: timedelta = timedelta(0),
    max_rows: int = MAX_FAILURE_ROWS,
) -> RuleResult:
    """No article is published after ``now`` (+ ``tolerance``): a future date would leak into features."""
    limit = _utc(now, "now") + pd.Timedelta(tolerance)
    bad = news["published_at"] > limit
    failures = news.loc[bad, ["article_id", "published_at", "source", "title"]].sort_values("published_at")
    return RuleResult(
        passed=not bool(bad.any()),
        severity="error",
        description=f"{int(bad.sum())} articles dated after {limit}",
        failures=_head(failures, max_rows),
        metrics={"rows": len(news), "future_rows": int(bad.sum()), "now": limit.isoformat()},
        name="future_articles",
    )


def empty_titles(news: pd.DataFrame, *, severity: Severity = "warn", max_rows: int = MAX_FAILURE_ROWS) -> RuleResult:
    """Articles whose title is null or blank.

    "warn" by default: real feeds carry a few (the bundled 2022 data has one) and the body still scores.
    """
    title = news["title"].astype("string").fillna("").str.strip()
    bad = title == ""
    failures = news.loc[bad, ["article_id", "published_at", "source", "url", "body"]]
    return RuleResult(
        passed=not bool(bad.any()),
        severity=severity,
        description=f"{int(bad.sum())} of {len(news)} articles have an empty title",
        failures=_head(failures, max_rows),
        metrics={"rows": len(news), "empty_titles": int(bad.sum())},
        name="empty_titles",
    )


def news_volume_by_day(
    daily_counts: pd.Series,
    min_ratio: float = 0.25,
    *,
    window_days: int = 14,
    min_history_days: int = 7,
    through: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per UTC day from the first counted day (to ``through`` if later): ``count``, the ``trailing_median``
    of the ``window_days`` before it, ``history_days`` and ``thin`` (under ``min_ratio`` x that median).

    ``daily_counts`` is indexed by UTC day (dates, strings or timestamps); a day absent from it counts 0
    articles if it lies inside the covered range. Days with fewer than ``min_history_days`` days before
    them are never thin (``checked`` is False).
    """
    index = pd.to_datetime(pd.Index(daily_counts.index))
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    counts = pd.Series(daily_counts.to_numpy(dtype=float), index=index.floor("D")).groupby(level=0).sum()
    if counts.empty:
        return pd.DataFrame(columns=["count", "trailing_median", "history_days", "checked", "thin"])
    last = counts.index.max() if through is None else max(counts.index.max(), through)
    full = counts.reindex(pd.date_range(counts.index.min(), last, freq="D"), fill_value=0)
    before = full.shift(1).rolling(window_days, min_periods=1)
    table = pd.DataFrame(
        {"count": full, "trailing_median": before.median(), "history_days": before.count().astype(int)}
    )
    table["checked"] = table["history_days"] >= min_history_days
    median = table["trailing_median"]
    table["thin"] = table["checked"] & (median > 0) & (table["count"] < min_ratio * median)
    return table


def news_volume_anomaly(
    daily_counts: pd.Series,
    day: datetime | pd.Timestamp | str,
    min_ratio: float = 0.25,
    *,
    window_days: int = 14,
    min_history_days: int = 7,
) -> RuleResult:
    """Warn when ``day`` has fewer than ``min_ratio`` x the median article count of the previous days.

    One day of ``news_volume_by_day`` (same arguments): a day absent from ``daily_counts`` inside the
    covered range counts 0 articles; with fewer than ``min_history_days`` days before it the rule is skipped.
    """
    name = "news_volume_anomaly"
    target = pd.Timestamp(day)
    target = (target.tz_localize("UTC") if target.tzinfo is None else target.tz_convert("UTC")).floor("D")
    table = news_volume_by_day(
        daily_counts, min_ratio, window_days=window_days, min_history_days=min_history_days, through=target
    )
    if table.empty:
        return _skipped(name, "warn", "no daily counts")
    history = int(table.at[target, "history_days"]) if target in table.index else 0
    if history < min_history_days:
        return _skipped(name, "warn", f"only {history} days of history (need {min_history_days})")
    count, median = float(table.at[target, "count"]), float(table.at[target, "trailing_median"])
    passed = not table.at[target, "thin"]
    ratio = count / median if median > 0 else 1.0
    return RuleResult(
        passed=passed,
        severity="warn",
        description=(
            f"{int(count)} articles on {target.date()} vs trailing {history}-day median {median:g} "
            f"(ratio {ratio:.2f}, warn below {min_ratio:g})"
        ),
        failures=pd.DataFrame() if passed else pd.DataFrame({"day": [target], "count": [count], "median": [median]}),
        metrics={"day": str(target.date()), "count": count, "trailing_median": median, "ratio": ratio},
        name=name,
    )


# ------------------------------------------------------------------------------------ features/training


def leakage_guard(training_set: pd.DataFrame, *, atol: float = 1e-9, max_rows: int = MAX_FAILURE_ROWS) -> RuleResult:
    """Labels come from the bar AFTER the feature bar.

    With a ``label_ts`` column: every label_ts > ts. Otherwise structurally: target_up_1h agrees with
    target_log_return_1h > 0, and wherever the next bar (ts + 1h) of the symbol is also in the table,
    target_log_return_1h[ts] == log_return_1h[ts + 1h] (the next bar's return; equality with the same
    bar's return is the classic leak).
    """
    name = "leakage_guard"
    problems: list[pd.DataFrame] = []
    metrics: dict[str, Any] = {"rows": len(training_set)}
    if "target_up_1h" in training_set and "target_log_return_1h" in training_set:
        up = training_set["target_up_1h"].astype(bool)
        mismatch = up != (training_set["target_log_return_1h"] > 0)
        metrics["up_label_mismatches"] = int(mismatch.sum())
        problems.append(
            training_set.loc[mismatch, ["symbol", "ts"]].assign(problem="target_up_1h != (target_log_return_1h > 0)")
        )
    if "label_ts" in training_set:
        early = ~(training_set["label_ts"] > training_set["ts"])
        metrics["label_not_after_feature"] = int(early.sum())
        problems.append(training_set.loc[early, ["symbol", "ts"]].assign(problem="label_ts <= ts"))
    elif {"log_return_1h", "target_log_return_1h"} <= set(training_set.columns):
        rows = training_set[["symbol", "ts", "log_return_1h", "target_log_return_1h"]]
        nxt = rows[["symbol", "ts", "log_return_1h"]].assign(ts=rows["ts"] - HOUR)
        pair = rows.merge(nxt, on=["symbol", "ts"], suffixes=("", "_next"))
        misaligned = ~np.isclose(pair["target_log_return_1h"], pair["log_return_1h_next"], rtol=1e-9, atol=atol)
        same_bar = np.isclose(rows["target_log_return_1h"], rows["log_return_1h"], rtol=0, atol=atol) & (
            rows["log_return_1h"].abs() > atol
        )
        metrics |= {
            "pairs_checked": len(pair),
            "labels_not_next_bar_return": int(misaligned.sum()),
            "labels_equal_same_bar_return": int(same_bar.sum()),
        }
        problems.append(pair.loc[misaligned, ["symbol", "ts"]].assign(problem="label != next bar's log_return_1h"))
        # Without next-bar pairs to check, a label equal to its own bar's return on most rows is the leak.
        if len(pair) == 0 and len(rows) > 0 and same_bar.mean() > 0.5:
            problems.append(rows.loc[same_bar, ["symbol", "ts"]].assign(problem="label == same bar's log_return_1h"))
    else:
        return _skipped(name, "error", "no label_ts and no log_return_1h/target_log_return_1h to compare")
    failures = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame()
    return RuleResult(
        passed=failures.empty,
        severity="error",
        description=f"{len(failures)} rows whose label is not strictly after the feature bar",
        failures=_head(failures, max_rows),
        metrics=metrics,
        name=name,
    )


def null_rates(
    features: pd.DataFrame,
    warmup_bars: int = 35,
    *,
    max_null_rate: float = 0.01,
    columns: Sequence[str] = FEATURE_COLUMNS,
    judged: pd.DataFrame | None = None,
) -> RuleResult:
    """Null rate of each feature after each symbol's first ``warmup_bars`` rows stays <= ``max_null_rate``.

    The default warm-up (35 bars) covers the longest window of features.md: MACD(12, 26, 9)'s signal line
    needs 34 bars. A missing feature column counts as 100 % null.

    ``judged`` (booleans, ``features``' index, one column per feature) narrows each feature to the rows where
    a null is a defect: the rows whose lag or window is complete (features.md "Gaps, venues and news
    coverage"). A null that the gap rules put there (a missing bar of the symbol or of BTC, no news coverage)
    is then never counted; a null inside a complete window still is. A feature without a ``judged`` column
    is judged on every row after the warm-up.
    """
    ordered = features.sort_values(["symbol", "ts"])
    position = ordered.groupby("symbol").cumcount()
    after = ordered.loc[position >= warmup_bars]
    n = len(after)
    rows: dict[str, int] = {}
    nulls: dict[str, int] = {}
    for col in columns:
        if judged is not None and col in judged.columns:
            mask = judged.loc[after.index, col].to_numpy(dtype=bool)
        else:
            mask = np.ones(n, dtype=bool)
        rows[col] = int(mask.sum())
        nulls[col] = int(after[col].isna().to_numpy()[mask].sum()) if col in after else rows[col]
    rates = {col: (1.0 if col not in after else nulls[col] / rows[col] if rows[col] else 0.0) for col in columns}
    over = [c for c in columns if rates[c] > max_null_rate]
    failures = pd.DataFrame(
        {
            "feature": over,
            "null_rate": [rates[c] for c in over],
            "nulls": [nulls[c] for c in over],
            "rows": [rows[c] for c in over],
        }
    )
    if judged is None:
        description = (
            f"{len(over)} features above {max_null_rate:.1%} nulls after a {warmup_bars}-bar warm-up ({n} rows judged)"
        )
    else:
        lo, hi = min(rows.values(), default=0), max(rows.values(), default=0)
        warm = f", after a {warmup_bars}-bar warm-up" if warmup_bars else ""
        description = (
            f"{len(over)} features above {max_null_rate:.1%} nulls on the rows whose lag or window is complete "
            f"({lo}-{hi} of {n} rows judged per feature{warm})"
        )
    return RuleResult(
        passed=not over,
        severity="error",
        description=description,
        failures=failures,
        metrics={
            "rows_after_warmup": n,
            "warmup_bars": warmup_bars,
            "null_rates": rates,
            **({"rows_judged": rows} if judged is not None else {}),
        },
        name="null_rates",
    )


def splits_purged(training_set: pd.DataFrame, purge_bars: int = 24) -> RuleResult:
    """Splits are by time: train < valid < test, each ts in one split, >= ``purge_bars`` hours purged between.

    "Purged" means at least ``purge_bars`` hourly ts lie strictly between the last ts of one split and the
    first of the next, i.e. their difference is >= (purge_bars + 1) hours. Absent splits are reported in
    the metrics, not failed.
    """
    problems: list[dict[str, Any]] = []
    split = training_set["split"]
    unknown = sorted(set(split.dropna().unique()) - set(SPLITS))
    if unknown or split.isna().any():
        problems.append({"boundary": "", "problem": f"unknown split values {unknown or [None]}"})
    per_ts = training_set.groupby("ts")["split"].nunique()
    shared = per_ts[per_ts > 1]
    for ts in shared.index[:MAX_FAILURE_ROWS]:
        problems.append({"boundary": "", "problem": f"ts {ts} is in several splits"})
    ranges = training_set.groupby("split")["ts"].agg(["min", "max", "size"])
    present = [s for s in SPLITS if s in ranges.index]
    gaps: dict[str, float] = {}
    need = (purge_bars + 1) * HOUR
    for before, after in itertools.pairwise(present):
        last, first = ranges.at[before, "max"], ranges.at[after, "min"]
        gap = first - last
        gaps[f"{before}->{after}"] = gap / HOUR
        if gap < need:
            problems.append(
                {
                    "boundary": f"{before}->{after}",
                    "last_ts_before": last,
                    "first_ts_after": first,
                    "gap_hours": gap / HOUR,
                    "problem": "overlap or out of order" if gap <= pd.Timedelta(0) else f"purge < {purge_bars} bars",
                }
            )
    return RuleResult(
        passed=not problems,
        severity="error",
        description=f"{len(problems)} split problems (need >= {purge_bars} purged hourly bars between splits)",
        failures=pd.DataFrame(problems),
        metrics={
            "rows_by_split": {s: int(ranges.at[s, "size"]) for s in present},
            "missing_splits": [s for s in SPLITS if s not in present],
            "gap_hours": gaps,
            "ts_in_several_splits": len(shared),
        },
        name="splits_purged",
    )


# ---------------------------------------------------------------------------------------------- score


def consistency_ratio(prices: pd.DataFrame) -> float:
    """Share of rows that pass the OHLC rule and are not an extra copy of an earlier (symbol, ts) (1.0 if none)."""
    return 1.0 if len(prices) == 0 else float(_consistent_bars(prices).mean())


def _consistent_bars(prices: pd.DataFrame) -> pd.Series:
    low_ok, high_ok, range_ok = _ohlc_ok(prices)
    return low_ok & high_ok & range_ok & ~prices.duplicated(["symbol", "ts"], keep="first")


def _ratio(value: float | RuleResult | None, what: str) -> float | None:
    if isinstance(value, RuleResult):
        value = None if value.skipped else value.metrics.get("ratio")
    if value is None:
        return None
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a share in [0, 1], got {value}")
    return value


def quality_score(
    completeness: float | RuleResult,
    consistency: float | RuleResult,
    accuracy: float | RuleResult | None = None,
) -> dict[str, Any]:
    """The partition quality score: three sub-scores and their weighted mean, all 0-100.

    Inputs are shares in [0, 1] (or the RuleResult whose ``metrics["ratio"]`` holds it):
    - completeness = expected bars present / expected bars (``completeness()``: hours closed by now);
    - consistency = bars passing the OHLC rule and not duplicated / bars received (``consistency_ratio()``);
    - accuracy = sampled bars within tolerance of a second provider / sampled bars
      (``cross_provider_accuracy()``); None, or a skipped result, when nothing was sampled.
    Sub-score = 100 * share. overall = 0.5 * completeness + 0.3 * consistency + 0.2 * accuracy; without
    accuracy the other two are reweighted to sum to 1: 0.625 * completeness + 0.375 * consistency.
    """
    shares = {
        "completeness": _ratio(completeness, "completeness"),
        "consistency": _ratio(consistency, "consistency"),
        "accuracy": _ratio(accuracy, "accuracy"),
    }
    for key in ("completeness", "consistency"):
        if shares[key] is None:
            raise ValueError(f"{key} is required")
    used = {k: w for k, w in WEIGHTS.items() if shares[k] is not None}
    total = sum(used.values())
    weights = {k: w / total for k, w in used.items()}
    overall = sum(100.0 * shares[k] * w for k, w in weights.items())  # type: ignore[operator]
    return {
        "completeness_score": 100.0 * shares["completeness"],  # type: ignore[operator]
        "consistency_score": 100.0 * shares["consistency"],  # type: ignore[operator]
        "accuracy_score": None if shares["accuracy"] is None else 100.0 * shares["accuracy"],
        "overall_score": overall,
        "weights": weights,
    }


def partition_score_rows(
    prices: pd.DataFrame,
    *,
    partition_key: str,
    symbols: Sequence[str],
    now: datetime | pd.Timestamp,
    secondary: pd.DataFrame | None = None,
    tolerance: float = 0.01,
) -> pd.DataFrame:
    """Rows of quality.partition_scores for one daily partition: one per symbol plus one ``"*"`` row."""
    day = pd.Timestamp(partition_key).date()
    return partition_scores(prices, [day], symbols=symbols, now=now, secondary=secondary, tolerance=tolerance)


def partition_scores(
    prices: pd.DataFrame,
    days: Sequence[date],
    *,
    symbols: Sequence[str],
    now: datetime | pd.Timestamp,
    secondary: pd.DataFrame | None = None,
    tolerance: float = 0.01,
) -> pd.DataFrame:
    """Rows of quality.partition_scores for daily partitions ``days``: per day, one per symbol plus one ``"*"``.

    ``prices`` holds the days' bars; ``secondary`` an optional sample of some of them from a second provider
    (the accuracy of a day without sampled bars is null). Per (day, symbol) the counts are exactly those of
    ``completeness``, ``consistency_ratio`` and ``cross_provider_accuracy`` on that day's bars, scored by
    ``quality_score``; the ``"*"`` row pools every symbol. Grouped, not looped: 90 days score in milliseconds.
    """
    now_ = _utc(now, "now")
    symbols = list(symbols)
    secondary = secondary if secondary is not None else prices.iloc[:0]
    starts = pd.DatetimeIndex([pd.Timestamp(day, tz="UTC") for day in days], name="partition_start").as_unit("ns")
    day = prices["ts"].dt.floor("D").dt.as_unit("ns")
    own = prices.assign(partition_start=day).loc[prices["symbol"].isin(symbols) & day.isin(starts)]
    keys = ["partition_start", "symbol"]
    last_closed = (now_ - HOUR).floor("h")
    due = own.loc[(own["ts"] == own["ts"].dt.floor("h")) & (own["ts"] <= last_closed), [*keys, "ts"]]
    due = due.drop_duplicates()
    pairs = own[[*keys, "ts", "close"]].merge(
        secondary[["symbol", "ts", "close"]], on=["symbol", "ts"], suffixes=("_primary", "_secondary")
    )
    pairs["accurate"] = (pairs["close_secondary"] - pairs["close_primary"]).abs() / pairs["close_primary"] <= tolerance
    grid = pd.MultiIndex.from_product([starts, symbols], names=keys)
    counts = pd.DataFrame(
        {
            "bars_present": due.groupby(keys).size(),
            "bars_received": own.groupby(keys).size(),
            "bars_consistent": _consistent_bars(own).groupby([own[key] for key in keys]).sum(),
            "bars_sampled": pairs.groupby(keys).size(),
            "bars_accurate": pairs.groupby(keys)["accurate"].sum(),
        }
    )
    counts.index.names = ["partition_start", "symbol"]
    counts = counts.reindex(grid).fillna(0).astype("int64")
    expected = {start: len(expected_bar_times(start, start + pd.Timedelta(days=1), now_)) for start in starts}
    counts["bars_expected"] = [expected[start] for start in counts.index.get_level_values("partition_start")]
    pooled = counts.groupby(level="partition_start").sum()
    pooled["symbol"] = ALL_SYMBOLS
    rows = pd.concat([counts.reset_index(), pooled.reset_index()], ignore_index=True)
    order = {symbol: position for position, symbol in enumerate([*symbols, ALL_SYMBOLS])}
    rows = rows.sort_values(
        ["partition_start", "symbol"], key=lambda col: col.map(order) if col.name == "symbol" else col
    )
    scores = pd.DataFrame(
        [
            quality_score(
                1.0 if row.bars_expected == 0 else row.bars_present / row.bars_expected,
                1.0 if row.bars_received == 0 else row.bars_consistent / row.bars_received,
                None if row.bars_sampled == 0 else row.bars_accurate / row.bars_sampled,
            )
            for row in rows.itertuples()
        ],
        index=rows.index,
    )
    frame = rows.assign(
        partition_key=rows["partition_start"].dt.strftime("%Y-%m-%d"),
        completeness_score=scores["completeness_score"],
        consistency_score=scores["consistency_score"],
        accuracy_score=scores["accuracy_score"].astype("float64"),
        overall_score=scores["overall_score"],
        computed_at=now_,
    )
    frame["computed_at"] = frame["computed_at"].astype("datetime64[ns, UTC]")
    columns = [
        "partition_key", "partition_start", "symbol", "bars_expected", "bars_present", "bars_received",
        "bars_consistent", "bars_sampled", "bars_accurate", "completeness_score", "consistency_score",
        "accuracy_score", "overall_score", "computed_at",
    ]  # fmt: skip
    return frame[columns].reset_index(drop=True)


# --------------------------------------------------------------------------------------------- coverage


def _day_list(days: Sequence[Any], limit: int = 8) -> str:
    """``2022-05-04..2022-05-06, 2022-05-09`` (stretches of consecutive days), cut after ``limit`` stretches."""
    stretches = consecutive_runs(sorted({pd.Timestamp(day).date() for day in days}))
    shown = [f"{s[0]}" if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in stretches[:limit]]
    more = f" and {len(stretches) - limit} more stretches" if len(stretches) > limit else ""
    return ", ".join(shown) + more


def symbol_day_coverage(coverage: pd.DataFrame, *, max_rows: int = MAX_FAILURE_ROWS) -> RuleResult:
    """raw.price_coverage of a run: failed (symbol, day)s are errors, partial and no_data ones warnings.

    Never meant to block: a (symbol, day) is the unit of failure, and the other symbols' days flow on.
    """
    if coverage.empty:
        return _skipped("symbol_day_coverage", "warn", "no raw.price_coverage rows for the run's days")
    counts = coverage["status"].value_counts().to_dict()
    problems = coverage[coverage["status"] != "complete"]
    parts = []
    for status in ("failed", "partial", "no_data"):
        rows = problems[problems["status"] == status]
        if not rows.empty:
            per_symbol = "; ".join(
                f"{symbol} {_day_list(group['day'], 3)}" for symbol, group in rows.groupby("symbol", sort=True)
            )
            parts.append(f"{len(rows)} {status} ({per_symbol})")
    failed = counts.get("failed", 0)
    description = (
        f"{counts.get('complete', 0)} of {len(coverage)} symbol-days complete"
        + (": " + "; ".join(parts) if parts else "")
        + ("; failed ones keep their earlier bars, re-run them once a provider recovers" if failed else "")
    )
    return RuleResult(
        passed=problems.empty,
        severity="error" if failed else "warn",
        description=description,
        failures=_head(problems[["symbol", "day", "status", "bars", "provider", "detail"]], max_rows),
        metrics={status: int(counts.get(status, 0)) for status in ("complete", "partial", "no_data", "failed")},
        name="symbol_day_coverage",
    )


def news_coverage_by_day(
    coverage: pd.DataFrame, start: datetime | None, end: datetime | None, now: datetime
) -> RuleResult:
    """The run's days that no news provider covered (fully or in part), from raw.news_coverage."""
    if start is None or end is None:
        if coverage.empty:
            return _skipped("news_coverage", "warn", "no raw.news_coverage rows")
        start = coverage["window_start"].min().floor("D").to_pydatetime()
        end = (coverage["window_end"].max().ceil("D")).to_pydatetime()
    end = min(_utc(end, "end"), _utc(now, "now").floor("h"))
    hours = covered_hours(coverage, _utc(start, "start"), end)
    if hours.empty:
        return _skipped("news_coverage", "warn", "no closed hour in the run's window")
    by_day = hours.groupby(hours.index.floor("D")).agg(["sum", "size"])
    uncovered = by_day.index[by_day["sum"] == 0]
    partly = by_day.index[(by_day["sum"] > 0) & (by_day["sum"] < by_day["size"])]
    failures = pd.DataFrame(
        {
            "day": [str(day.date()) for day in by_day.index],
            "covered_hours": by_day["sum"].astype(int).to_numpy(),
            "hours": by_day["size"].astype(int).to_numpy(),
        }
    )
    failures = failures[failures["covered_hours"] < failures["hours"]]
    parts = []
    if len(uncovered):
        parts.append(f"no news provider covered {_day_list(uncovered)}")
    if len(partly):
        parts.append(f"partly covered: {_day_list(partly)}")
    covered_share = float(hours.mean())
    return RuleResult(
        passed=not parts,
        severity="warn",
        description=(
            f"{covered_share:.0%} of the run's hours covered by a news provider"
            + (": " + "; ".join(parts) + " (sentiment is null where nobody looked)" if parts else "")
        ),
        failures=_head(failures, MAX_FAILURE_ROWS),
        metrics={
            "covered_share": round(covered_share, 4),
            "uncovered_days": len(uncovered),
            "partly_covered_days": len(partly),
        },
        name="news_coverage",
    )


def price_coverage_report(
    coverage: pd.DataFrame, first: date, last: date, symbols: Sequence[str]
) -> tuple[list[str], list[str]]:
    """What a bootstrap over ``first`` .. ``last`` got per symbol, from raw.price_coverage: (report lines, problems).

    Problems (a symbol with no bar at all: unknown or not listed; failed (symbol, day)s, which a re-run can fix)
    make the command fail; listings, delistings and gaps are reported as facts.
    """
    lines: list[str] = []
    problems: list[str] = []
    coverage = coverage.assign(day=pd.to_datetime(coverage["day"]).dt.date)
    for symbol in symbols:
        mine = coverage[coverage["symbol"] == symbol].sort_values("day")
        served = mine[mine["status"].isin(["complete", "partial"])]
        failed = mine[mine["status"] == "failed"]
        no_data = mine[mine["status"] == "no_data"]
        partial = mine[mine["status"] == "partial"]
        if served.empty:
            if failed.empty:
                problems.append(f"{symbol}: no provider has any bar between {first} and {last} (unknown or not listed)")
            else:
                problems.append(
                    f"{symbol}: no bar stored; {len(failed)} day(s) failed ({_day_list(failed['day'], 3)}): "
                    f"{failed['detail'].iloc[0]}; run the same command again once a provider recovers"
                )
            continue
        first_bar, last_bar = served["day"].iloc[0], served["day"].iloc[-1]
        before = no_data[no_data["day"] < first_bar]
        after = no_data[no_data["day"] > last_bar]
        if not before.empty and len(before) == (first_bar - first).days:
            lines.append(f"{symbol}: first bar on {first_bar}: no provider has bars before it (listed then)")
        if not after.empty and len(after) == (last - last_bar).days:
            lines.append(f"{symbol}: no bar after {last_bar}: no provider has bars after it (delisted or halted)")
        inner = no_data[(no_data["day"] > first_bar) & (no_data["day"] < last_bar)]
        if not inner.empty:
            lines.append(f"{symbol}: no provider had bars on {_day_list(inner['day'], 4)} (a gap in the market data)")
        if not partial.empty:
            lines.append(
                f"{symbol}: {len(partial)} partial day(s), {int(partial['bars'].sum())} of {24 * len(partial)} bars "
                f"({_day_list(partial['day'], 4)}): the missing hours stay missing, features there are null"
            )
        if not failed.empty:
            problems.append(
                f"{symbol}: {len(failed)} day(s) failed ({_day_list(failed['day'], 4)}): {failed['detail'].iloc[0]}; "
                "the other days landed; run the same command again once a provider recovers"
            )
    return lines, problems
