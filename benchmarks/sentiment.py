"""How fast news normalisation, article scoring and the hourly sentiment features are on the bundled real news.

Run: .venv/bin/python benchmarks/sentiment.py  (prints a table; asserts nothing)

News: data/replay/news/news.csv.gz (3,907 real items, 2022-05-04..2022-08-01) when present, else the test
fixture slice. Bars: the demo window, 6 symbols x 2,160 hourly bars (2022-05-04 00:00 .. 2022-08-01 23:00 UTC).
News coverage: one successful answer over the whole window and the day before it (the first bars' 24 hours),
as raw.news_coverage holds it (one row per UTC day): every bar has coverage 1, no feature is null.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a plain script from anywhere, installed package or not
    sys.path.insert(0, str(ROOT))

from crypto_assets.symbols import DEFAULT_UNIVERSE  # noqa: E402
from crypto_assets.transforms.news import coverage_rows, normalize_news  # noqa: E402
from crypto_assets.transforms.sentiment import DEFAULT_MODEL, get_model, score_articles, sentiment_hourly  # noqa: E402

REPLAY_NEWS = ROOT / "data" / "replay" / "news" / "news.csv.gz"
FIXTURE_NEWS = ROOT / "crypto_assets_tests" / "fixtures" / "news_sample.csv.gz"
REPEATS = 3


def load_news() -> tuple[pd.DataFrame, str]:
    if REPLAY_NEWS.exists():
        raw, origin = pd.read_csv(REPLAY_NEWS, keep_default_na=False, dtype=str), REPLAY_NEWS
    else:
        raw, origin = pd.read_csv(FIXTURE_NEWS, skiprows=1, keep_default_na=False, dtype=str), FIXTURE_NEWS
    raw = raw.rename(columns={"dataset": "provider"}).assign(categories="", external_id="")
    return raw, str(origin.relative_to(ROOT))


def best_of(fn, repeats: int = REPEATS):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    universe = DEFAULT_UNIVERSE
    raw, origin = load_news()

    t_norm, news = best_of(lambda: normalize_news(raw, universe))
    t_load = time.perf_counter()
    model = get_model(DEFAULT_MODEL)
    t_load = time.perf_counter() - t_load
    texts = (news["title"] + ". " + news["body"]).tolist()
    t_score_all, _ = best_of(lambda: model.score(texts))
    t_articles, scored = best_of(lambda: score_articles(news, model, universe))
    n_tagged = scored["article_id"].nunique()

    hours = pd.date_range("2022-05-04T00:00Z", "2022-08-01T23:00Z", freq="h")
    bars = pd.DataFrame({"symbol": [s for s in universe for _ in hours], "ts": list(hours) * len(universe)})
    answer = {
        "provider": "bundled",
        "start": hours[0] - pd.Timedelta(days=1),
        "end": hours[-1] + pd.Timedelta(hours=1),
        "status": "ok",
        "detail": "",
        "fetched_at": hours[-1] + pd.Timedelta(hours=1),
    }
    coverage = coverage_rows([answer], pd.DataFrame())
    t_hourly, hourly = best_of(lambda: sentiment_hourly(bars, scored, coverage))

    print(f"news: {origin} ({len(raw):,} rows -> {len(news):,} articles, {n_tagged:,} tagged with a symbol)")
    print(f"model: {model.name}; bars: {len(universe)} symbols x {len(hours):,} hourly bars; best of {REPEATS} runs\n")
    rows = [
        ["normalize_news", f"{len(raw):,} rows", f"{t_norm:.3f}", f"{len(raw) / t_norm:,.0f} rows/s"],
        ["get_model (build VADER once)", "1", f"{t_load:.3f}", ""],
        [f"{model.name}.score (all articles)", f"{len(texts):,} articles", f"{t_score_all:.3f}",
         f"{len(texts) / t_score_all:,.0f} articles/s"],
        ["score_articles (tag + score + explode)", f"{n_tagged:,} articles", f"{t_articles:.3f}",
         f"{n_tagged / t_articles:,.0f} articles/s"],
        ["sentiment_hourly", f"{len(hourly):,} bars", f"{t_hourly:.3f}", f"{len(hourly) / t_hourly:,.0f} bars/s"],
    ]  # fmt: skip
    headers = ["step", "input", "seconds", "throughput"]
    print(tabulate(rows, headers=headers, colalign=("left", "right", "right", "right")))
    with_news = (hourly["news_count_24h"] > 0).mean()
    print(f"\nbars with at least one article in their 24h window: {with_news:.1%}")


if __name__ == "__main__":
    main()
