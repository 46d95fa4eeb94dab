"""Article sentiment (VADER + crypto lexicon) and the hourly sentiment features 12-14 (features.md).

Real articles come from fixtures/news_sample.csv.gz (a slice of the project's real 2022 news set, see its first line).
The only stand-ins are two tiny test models in the registry/``score_articles`` tests (a real second model, e.g.
FinBERT, needs local weights that are not bundled); they check the plumbing, not sentiment.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from crypto_assets.symbols import DEFAULT_UNIVERSE
from crypto_assets.transforms import sentiment as sentiment_module
from crypto_assets.transforms.news import normalize_news
from crypto_assets.transforms.sentiment import (
    ARTICLE_SENTIMENT_COLUMNS,
    CRYPTO_LEXICON,
    SENTIMENT_HOURLY_COLUMNS,
    SentimentModel,
    VaderModel,
    available_models,
    get_model,
    news_coverage_24h,
    prepare_text,
    register_model,
    score_articles,
    sentiment_hourly,
)

FIXTURE = Path(__file__).parent / "fixtures" / "news_sample.csv.gz"
U = DEFAULT_UNIVERSE
H = pd.Timedelta(hours=1)


def vader_compound(valence_sum: float) -> float:
    """VADER's normalisation of a sum of valences (alpha = 15), rounded as polarity_scores does."""
    return round(valence_sum / math.sqrt(valence_sum * valence_sum + 15), 4)


@pytest.fixture(scope="module")
def news() -> pd.DataFrame:
    raw = pd.read_csv(FIXTURE, skiprows=1, keep_default_na=False, dtype=str)
    raw = raw.rename(columns={"dataset": "provider"}).assign(categories="", external_id="")
    return normalize_news(raw, U)


@pytest.fixture(scope="module")
def vader() -> SentimentModel:
    return get_model("vader")


@pytest.fixture(scope="module")
def scored(news, vader) -> pd.DataFrame:
    return score_articles(news, vader, U)


# --- models -------------------------------------------------------------------------------------------------------


def test_registry():
    model = get_model("vader")
    assert isinstance(model, VaderModel) and isinstance(model, SentimentModel) and model.name == "vader"
    assert get_model() is model  # the default, built once
    assert "vader" in available_models()
    with pytest.raises(ValueError, match=r"unknown sentiment model 'finbert'; available: .*vader"):
        get_model("finbert")


def test_vader_bounds_on_real_text(news, vader):
    texts = (news["title"] + ". " + news["body"]).tolist()
    scores = vader.score(texts)
    assert scores.dtype == np.float64 and scores.shape == (len(texts),)
    assert np.all((scores >= -1) & (scores <= 1))
    assert (scores > 0.5).any() and (scores < -0.5).any()
    assert list(vader.score(["", None, float("nan")])) == [0.0, 0.0, 0.0]  # type: ignore[list-item]
    assert vader.score([]).shape == (0,)


def test_real_headlines_sign(vader):
    # verbatim titles from the fixture (real 2022-05-11..13 news)
    negative = [
        "DeFi protocols declare losses as attackers exploit LUNA price feed discrepancy",
        "Ethereum plunges 13% vs. Bitcoin pushing BTC dominance to 2022 high — more pain ahead?",
        "Matt Damon’s crypto ad blamed for losing people money",
    ]
    positive = [
        "Bitcoin gains superior to stocks in the long term, economist says",
        "Chinese high court rules Bitcoin has economic value and is legally protected",
        "Rising global adoption positions crypto perfectly for use in retail",
    ]
    assert (vader.score(negative) < -0.3).all()
    assert (vader.score(positive) > 0.3).all()


def test_hand_computed_scores(vader):
    # plunge (crypto lexicon, -1.8) + crash (VADER, -1.7); no caps, boosters or negation in the title
    title = "Sales of Blue-Chip NFTs Plunge Amid Crypto Market Crash"
    assert vader.score([title])[0] == vader_compound(CRYPTO_LEXICON["plunge"] - 1.7) == -0.6705
    assert vader.score(["Trader got rekt"])[0] == vader_compound(-2.5) == -0.5423


def test_crypto_lexicon_effect(vader):
    plain = SentimentIntensityAnalyzer()
    for text in ("Trader got rekt", "That project was a rug pull", "Another rug-pulled token", "Bearish on LUNA"):
        assert plain.polarity_scores(text)["compound"] == 0.0
        assert vader.score([text])[0] < -0.3
    rug = vader_compound(CRYPTO_LEXICON["rugpull"])
    assert vader.score(["That project was a rug pull", "That project was a Rug-Pull"]).tolist() == [rug, rug]
    assert vader.score(["Bitcoin hits a new all-time high"])[0] == vader_compound(CRYPTO_LEXICON["ath"])
    assert vader.score(["Bullish on SOL"])[0] > 0.3
    assert vader.score(["Token was a pump and dump"])[0] < -0.3
    # curly apostrophes still negate: "isn’t good" is not positive
    assert vader.score(["This isn’t good"])[0] == vader.score(["This isn't good"])[0] < 0


# --- score_articles -----------------------------------------------------------------------------------------------


class RecordingModel:
    """Test stand-in: scores a text by its length so rows can be traced back to their text."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def score(self, texts):
        self.seen.extend(texts)
        return np.array([min(len(t) / 100, 1.5) for t in texts])  # 1.5 on purpose: must be clipped to 1


def test_score_articles_explodes_tags_and_scores_once():
    ts = pd.Timestamp("2022-05-11T10:00:00Z")
    news = pd.DataFrame(
        {
            "article_id": ["a", "b", "c"],
            "published_at": [ts, ts + H, ts - H],
            "title": ["Bitcoin and Ether slide", "Fed speaks", "x" * 200],
            "body": ["BTC", "no coins here", ""],
            "categories": ["", "", "XRP"],
        }
    )
    model = RecordingModel()
    out = score_articles(news, model, U)
    assert list(out.columns) == list(ARTICLE_SENTIMENT_COLUMNS)
    assert model.seen == ["Bitcoin and Ether slide. BTC", "x" * 200 + ". "]  # untagged "b" is not scored
    assert list(zip(out["article_id"], out["symbol"], strict=True)) == [("c", "XRP"), ("a", "BTC"), ("a", "ETH")]
    assert out["compound"].tolist() == [1.0, 0.28, 0.28]
    assert (out["model"] == "recording").all()
    assert str(out["published_at"].dtype) == "datetime64[ns, UTC]" and out["compound"].dtype == np.float64
    assert out["published_at"].tolist() == [ts - H, ts, ts]
    empty = score_articles(news.iloc[1:2], model, U)
    assert list(empty.columns) == list(ARTICLE_SENTIMENT_COLUMNS) and empty.empty


def test_score_articles_real(news, scored):
    tagged = news[news["symbols"] != ""]
    assert len(scored) == sum(len(s.split("|")) for s in tagged["symbols"])
    assert set(scored["article_id"]) == set(tagged["article_id"])
    assert not scored.duplicated(["article_id", "symbol", "model"]).any()
    assert scored["compound"].between(-1, 1).all() and (scored["model"] == "vader").all()


def test_register_model():
    class Constant:
        name = "constant"

        def score(self, texts):
            return np.full(len(texts), 0.5)

    register_model("constant", Constant)
    try:
        assert get_model("constant").score(["a", "b"]).tolist() == [0.5, 0.5]
        assert "constant" in available_models()
    finally:
        sentiment_module._FACTORIES.pop("constant")
        sentiment_module._INSTANCES.pop("constant", None)


# --- sentiment_hourly ---------------------------------------------------------------------------------------------


def coverage(*windows: tuple[str, str], status: str = "ok", provider: str = "cryptocompare") -> pd.DataFrame:
    """raw.news_coverage rows: one provider answer per (window_start, window_end)."""
    starts = pd.to_datetime([w[0] for w in windows], utc=True)
    ends = pd.to_datetime([w[1] for w in windows], utc=True)
    return pd.DataFrame(
        {
            "provider": provider,
            "window_start": starts,
            "window_end": ends,
            "status": status,
            "articles": np.zeros(len(windows), dtype="int64"),
            "fetched_at": pd.Timestamp("2022-08-02T00:00Z"),
            "detail": "",
        }
    )


# Every hour of the fixture's period covered by one successful answer.
EVERYTHING = coverage(("2022-05-01T00:00Z", "2022-06-01T00:00Z"))


def reference_coverage(ts: pd.Timestamp, cov: pd.DataFrame) -> float:
    """news_coverage_24h literally: an hour is covered when each of its minutes lies inside an ok window."""
    ok = cov[cov["status"] == "ok"]
    windows = list(zip(ok["window_start"], ok["window_end"], strict=True))
    minute = pd.Timedelta(minutes=1)
    covered = 0
    for k in range(24):
        hour = ts - k * H
        starts = (hour + m * minute for m in range(60))
        if all(any(start <= m and m + minute <= end for start, end in windows) for m in starts):
            covered += 1
    return covered / 24


def reference_hourly(bars: pd.DataFrame, arts: pd.DataFrame, cov: pd.DataFrame = EVERYTHING) -> pd.DataFrame:
    """Features 12-14 written out literally, one bar and one article at a time."""
    rows = []
    for sym, ts in sorted({(s, t) for s, t in zip(bars["symbol"], bars["ts"], strict=True)}):
        day, six = [], []
        for a_sym, published, compound in zip(arts["symbol"], arts["published_at"], arts["compound"], strict=True):
            if a_sym != sym:
                continue
            if ts - timedelta(hours=23) <= published < ts + timedelta(hours=1):
                day.append(compound)
            if ts - timedelta(hours=5) <= published < ts + timedelta(hours=1):
                six.append(compound)
        mean24 = sum(day) / len(day) if day else 0.0
        mean6 = sum(six) / len(six) if six else 0.0
        share = 1.0 if cov is EVERYTHING else reference_coverage(ts, cov)
        if share == 0:
            mean24, volume, momentum = math.nan, math.nan, math.nan
        else:
            volume, momentum = math.log(1 + len(day)), mean6 - mean24
        rows.append((sym, ts, mean24, volume, momentum, len(day), share))
    return pd.DataFrame(rows, columns=list(SENTIMENT_HOURLY_COLUMNS))


def hourly_grid(start: str, end: str, symbols=U) -> pd.DataFrame:
    hours = pd.date_range(start, end, freq="h", tz="UTC")
    return pd.DataFrame([(s, t) for s in symbols for t in hours], columns=["symbol", "ts"])


def test_window_edges():
    ts = pd.Timestamp("2022-05-11T12:00:00Z")
    s = pd.Timedelta(seconds=1)
    arts = pd.DataFrame(
        {
            "article_id": list("abcdefg"),
            "symbol": "BTC",
            "published_at": [
                ts + H,  # a: next bar's
                ts + H - s,  # b: in (last second of the bar)
                ts - 5 * H,  # c: in both windows (6h window's first instant)
                ts - 5 * H - s,  # d: 24h window only
                ts - 23 * H,  # e: 24h window's first instant
                ts - 23 * H - s,  # f: out
                ts - 24 * H,  # g: out
            ],
            "model": "vader",
            "compound": [0.9, 0.5, -0.1, 0.3, -0.6, 0.7, 0.8],
        }
    )
    bars = pd.DataFrame({"symbol": ["BTC", "BTC", "ETH"], "ts": [ts, ts + H, ts]})
    out = sentiment_hourly(bars, arts, EVERYTHING)
    assert list(out.columns) == list(SENTIMENT_HOURLY_COLUMNS)
    assert (out["news_coverage_24h"] == 1.0).all()
    btc = out.iloc[0]
    assert btc["news_count_24h"] == 4  # b, c, d, e
    assert btc["sentiment_mean_24h"] == pytest.approx((0.5 - 0.1 + 0.3 - 0.6) / 4)
    assert btc["news_volume_24h"] == pytest.approx(math.log(5))
    assert btc["sentiment_momentum_6h"] == pytest.approx((0.5 - 0.1) / 2 - (0.5 - 0.1 + 0.3 - 0.6) / 4)
    nxt = out.iloc[1]  # ts + 1h: a joins, e leaves (it is now 24h old)
    assert nxt["news_count_24h"] == 4  # a, b, c, d
    assert nxt["sentiment_mean_24h"] == pytest.approx((0.9 + 0.5 - 0.1 + 0.3) / 4)
    eth = out.iloc[2]
    assert eth["symbol"] == "ETH" and eth["news_count_24h"] == 0
    assert (eth["sentiment_mean_24h"], eth["news_volume_24h"], eth["sentiment_momentum_6h"]) == (0.0, 0.0, 0.0)
    assert out["news_count_24h"].dtype == np.int64 and str(out["ts"].dtype) == "datetime64[ns, UTC]"


def test_momentum_zero_when_six_hour_window_empty():
    ts = pd.Timestamp("2022-05-11T12:00:00Z")
    arts = pd.DataFrame(
        {"article_id": ["a"], "symbol": ["SOL"], "published_at": [ts - 10 * H], "model": "vader", "compound": [0.4]}
    )
    out = sentiment_hourly(pd.DataFrame({"symbol": ["SOL"], "ts": [ts]}), arts, EVERYTHING).iloc[0]
    assert out["sentiment_mean_24h"] == 0.4 and out["sentiment_momentum_6h"] == pytest.approx(0.0 - 0.4)


def test_matches_brute_force_on_real_articles_with_gaps(scored):
    assert len(scored) > 200  # 159 tagged real articles, 204 (article, symbol) rows
    bars = hourly_grid("2022-05-09T00:00Z", "2022-05-16T05:00Z")
    # gaps: BTC loses 12 hours in the busiest stretch, SOL a whole day; the window stays 23h + 1h of TIME
    gap = (bars["symbol"] == "BTC") & bars["ts"].between("2022-05-12T03:00Z", "2022-05-12T14:00Z")
    gap |= (bars["symbol"] == "SOL") & (bars["ts"].dt.day == 12)
    bars = bars[~gap].sample(frac=1.0, random_state=7)  # any input order
    expected = reference_hourly(bars, scored)
    got = sentiment_hourly(bars, scored, EVERYTHING)
    assert len(got) == len(bars) and got["news_count_24h"].sum() > 500
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=1e-12)
    # the bar right after BTC's gap sees the articles published during the gap
    after = got[(got["symbol"] == "BTC") & (got["ts"] == pd.Timestamp("2022-05-12T15:00Z"))].iloc[0]
    during = scored[
        (scored["symbol"] == "BTC") & scored["published_at"].between("2022-05-12T03:00Z", "2022-05-12T15:59:59Z")
    ]
    assert len(during) > 0 and after["news_count_24h"] >= len(during)


def test_day_partition_equals_full_history(scored):
    bars = hourly_grid("2022-05-11T00:00Z", "2022-05-13T23:00Z")
    # an RSS answer reaching back two days, a failed day, and CryptoCompare's daily answers
    cov = pd.concat(
        [
            coverage(("2022-05-09T00:00Z", "2022-05-11T00:00Z"), ("2022-05-12T00:00Z", "2022-05-13T00:00Z")),
            coverage(("2022-05-11T00:00Z", "2022-05-12T00:00Z"), status="failed"),
            coverage(("2022-05-10T21:40Z", "2022-05-12T06:10Z"), provider="rss"),
        ],
        ignore_index=True,
    )
    full = sentiment_hourly(bars, scored, cov)
    day = pd.Timestamp("2022-05-12T00:00Z")
    day_bars = bars[(bars["ts"] >= day) & (bars["ts"] < day + pd.Timedelta(days=1))]
    # a day partition reads only the articles it can see: [day - 23h, day + 24h), and the answers overlapping them
    visible = scored[(scored["published_at"] >= day - 23 * H) & (scored["published_at"] < day + 24 * H)]
    answers = cov[(cov["window_end"] >= day - pd.Timedelta(days=1)) & (cov["window_start"] < day + 24 * H)]
    part = sentiment_hourly(day_bars, visible, answers)
    expected = full[(full["ts"] >= day) & (full["ts"] < day + pd.Timedelta(days=1))].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected, check_exact=True)


def test_several_models_need_a_choice(scored):
    other = scored.assign(model="other", compound=-scored["compound"])
    both = pd.concat([scored, other], ignore_index=True)
    bars = hourly_grid("2022-05-12T00:00Z", "2022-05-12T05:00Z")
    with pytest.raises(ValueError, match="several models"):
        sentiment_hourly(bars, both, EVERYTHING)
    mine = sentiment_hourly(bars, both, EVERYTHING, model="vader")
    pd.testing.assert_frame_equal(mine, sentiment_hourly(bars, scored, EVERYTHING))
    flipped = sentiment_hourly(bars, both, EVERYTHING, model="other")
    np.testing.assert_allclose(flipped["sentiment_mean_24h"], -mine["sentiment_mean_24h"], atol=1e-12)


def test_no_articles_and_no_bars():
    bars = hourly_grid("2022-05-12T00:00Z", "2022-05-12T02:00Z", symbols=("BTC",))
    empty_arts = pd.DataFrame({c: [] for c in ARTICLE_SENTIMENT_COLUMNS})
    out = sentiment_hourly(bars, empty_arts, EVERYTHING)
    assert len(out) == 3 and (out["news_count_24h"] == 0).all() and (out["sentiment_mean_24h"] == 0.0).all()
    none = sentiment_hourly(bars.iloc[:0], empty_arts, EVERYTHING)
    assert list(none.columns) == list(SENTIMENT_HOURLY_COLUMNS) and none.empty
    # nobody looked (no coverage rows at all): unknown, not "no news"
    unknown = sentiment_hourly(bars, empty_arts, EVERYTHING.iloc[:0])
    assert unknown[["sentiment_mean_24h", "news_volume_24h", "sentiment_momentum_6h"]].isna().all().all()
    assert (unknown["news_coverage_24h"] == 0.0).all() and (unknown["news_count_24h"] == 0).all()


def test_news_coverage_hand_computed():
    """An hour counts when it lies fully inside the union of the ok windows of any provider."""
    cov = pd.concat(
        [
            coverage(("2022-05-10T00:00Z", "2022-05-10T02:00Z"), ("2022-05-10T10:00Z", "2022-05-10T12:00Z")),
            coverage(("2022-05-10T02:00Z", "2022-05-10T04:00Z"), provider="rss"),  # touches the first: 00-04
            coverage(("2022-05-10T05:30Z", "2022-05-10T08:00Z"), provider="newsapi"),  # 05:00 half: not covered
            coverage(("2022-05-10T04:00Z", "2022-05-10T23:00Z"), status="failed", provider="newsapi"),
            coverage(("2022-05-10T12:00Z", "2022-05-10T20:00Z"), status="skipped", provider="newsapi"),
        ],
        ignore_index=True,
    )
    t = pd.Timestamp("2022-05-10T00:00Z")
    ts = pd.Series([t + 3 * H, t + 8 * H, t + 23 * H, t + 30 * H, t - H, t + 33 * H])
    # covered hours: 00, 01, 02, 03, 06, 07, 10, 11
    np.testing.assert_array_equal(news_coverage_24h(ts, cov) * 24, [4, 6, 8, 3, 0, 2])
    for one in ts:
        assert news_coverage_24h(pd.Series([one]), cov)[0] == reference_coverage(one, cov)


def test_sentiment_is_null_where_nobody_looked_and_follows_the_formulas_elsewhere(scored):
    bars = hourly_grid("2022-05-09T00:00Z", "2022-05-14T23:00Z", symbols=("BTC", "ETH", "SOL"))
    cov = pd.concat(
        [
            coverage(("2022-05-09T00:00Z", "2022-05-11T00:00Z")),  # history up to the 11th
            coverage(("2022-05-11T00:00Z", "2022-05-12T00:00Z"), status="failed"),  # nobody answered for the 11th
            coverage(("2022-05-12T07:20Z", "2022-05-13T09:00Z"), provider="rss"),
        ],
        ignore_index=True,
    )
    got = sentiment_hourly(bars, scored, cov)
    expected = reference_hourly(bars, scored, cov)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=0, atol=1e-12)
    features = ["sentiment_mean_24h", "news_volume_24h", "sentiment_momentum_6h"]
    unknown = got["news_coverage_24h"] == 0
    # 11th 23:00 (the 24 h since 00:00 of the 11th) .. 12th 07:00, and the days after the RSS answer
    assert unknown.any() and got.loc[unknown, features].isna().all().all()
    assert got.loc[~unknown, features].notna().all().all()
    hour = got.set_index(["symbol", "ts"])
    assert hour.loc[("BTC", pd.Timestamp("2022-05-11T22:00Z")), "news_coverage_24h"] == 1 / 24  # 10th 23:00
    assert hour.loc[("BTC", pd.Timestamp("2022-05-11T23:00Z")), "news_coverage_24h"] == 0.0
    assert hour.loc[("BTC", pd.Timestamp("2022-05-12T08:00Z")), "news_coverage_24h"] == 1 / 24  # 08:00 only
    # looked and found nothing is 0.0, not null
    looked_nothing = (got["news_coverage_24h"] > 0) & (got["news_count_24h"] == 0)
    assert looked_nothing.any() and (got.loc[looked_nothing, "sentiment_mean_24h"] == 0.0).all()
    with pytest.raises(ValueError, match="window_start"):
        sentiment_hourly(bars, scored, cov.drop(columns="window_start"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Another RUG-PULL, then a Sell-Offs wave", "Another rugpull, then a selloff wave"),
        ("a pump & dump before the all time high", "a pumpanddump before the ath"),
        ("BTC hits All-Time Highs", "BTC hits ath"),
        ("It isn\u2019t a \u201crally\u201d at this time", 'It isn\'t a "rally" at this time'),
        ("no slang here: rugged, pumped, sellers", "no slang here: rugged, pumped, sellers"),
    ],
)
def test_prepare_text_joins_slang_and_straightens_quotes(text, expected):
    assert prepare_text(text) == expected
