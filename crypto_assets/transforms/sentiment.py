"""Article sentiment (pluggable models, VADER by default) and the hourly sentiment features 12-14 of features.md.

Adding a model: write a class with a ``name`` and ``score(texts) -> np.ndarray`` of compound scores in [-1, 1]
and register a zero-argument factory with ``register_model("finbert", FinBertModel)``. Transformer models such as
FinBERT are not bundled: their weights must come from a local directory (e.g. read from a setting and loaded with
``transformers`` ``from_pretrained(path, local_files_only=True)``), never downloaded while a run is going, and the
class should map its class probabilities to one number in [-1, 1] (e.g. P(positive) - P(negative)).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from crypto_assets.timegrid import HOUR_NS
from crypto_assets.transforms.news import hours_covered, ok_windows, tag_symbols

DEFAULT_MODEL = "vader"

ARTICLE_SENTIMENT_COLUMNS: tuple[str, ...] = ("article_id", "symbol", "published_at", "model", "compound")
SENTIMENT_HOURLY_COLUMNS: tuple[str, ...] = (
    "symbol",
    "ts",
    "sentiment_mean_24h",
    "news_volume_24h",
    "sentiment_momentum_6h",
    "news_count_24h",
    "news_coverage_24h",
)

# Crypto slang and market words VADER's general lexicon lacks or scores in another sense, on VADER's -4..+4 scale.
# Valences are set by analogy with VADER's own anchors: good 1.9, bad -2.5, gain 2.4, loss -1.3, losses -1.7,
# crash -1.7, collapse -2.2, hacked -1.7, exploited -2.0, fraud -2.8, scam -2.7, bankrupt -2.6, fear -2.2,
# doubt -1.5. Price-move verbs sit a little below "gain"/"losses" (they report a move, they don't judge it).
# Overrides of VADER's own entries: "exploit" (-0.4 in the "make use of" sense; in crypto news an attack) and
# "fud" (-1.1; fear, uncertainty and doubt average about -1.7).
CRYPTO_LEXICON: dict[str, float] = {
    "bullish": 2.0,
    "bearish": -2.0,
    "hodl": 0.8,  # holding through a drop: mild conviction
    "rekt": -2.5,  # as "bad"
    "rugpull": -3.0,  # a team running off with the funds: a theft, worse than "scam"; see _PHRASES
    "pumpanddump": -2.7,  # a fraud scheme, as "scam"; see _PHRASES
    "hack": -1.7,
    "hacks": -1.7,
    "exploit": -2.0,
    "exploits": -2.0,
    "liquidation": -1.5,
    "liquidations": -1.5,
    "liquidated": -1.5,
    "ath": 2.0,  # all-time high; see _PHRASES
    "fud": -1.7,
    "pump": 1.0,
    "pumped": 1.0,
    "pumping": 1.0,
    "moon": 1.5,
    "mooning": 2.0,
    "scammed": -2.7,
    "crashes": -1.7,
    "crashed": -1.7,
    "rally": 1.8,
    "rallies": 1.8,
    "rallied": 1.8,
    "surge": 1.5,
    "surges": 1.5,
    "surged": 1.5,
    "soar": 1.8,
    "soars": 1.8,
    "soared": 1.8,
    "plunge": -1.8,
    "plunges": -1.8,
    "plunged": -1.8,
    "tumble": -1.5,
    "tumbles": -1.5,
    "tumbled": -1.5,
    "slump": -1.5,
    "slumps": -1.5,
    "selloff": -1.5,  # see _PHRASES
    "depeg": -2.0,
    "de-peg": -2.0,
    "bankruptcy": -2.6,  # as "bankrupt"
    "insolvent": -2.6,
    "insolvency": -2.6,
    "ponzi": -2.8,  # as "fraud"
    "halts": -1.0,  # "X halts withdrawals"
    "halted": -1.0,
}

# VADER splits on whitespace and looks single tokens up, so multi-word slang is joined into one lexicon token first.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\brug[\s-]*pull(?:s|ed|ing)?\b", re.I), "rugpull"),
    (re.compile(r"\bpump[\s-]+(?:and|&|n)[\s-]+dump(?:s|ing)?\b", re.I), "pumpanddump"),
    (re.compile(r"\ball[\s-]*time[\s-]+highs?\b", re.I), "ath"),
    (re.compile(r"\bsell[\s-]offs?\b", re.I), "selloff"),
)
# A word each phrase contains: a text holding none of them (most) needs no regex pass at all.
_PHRASE_WORDS = ("rug", "pump", "time", "sell")
# Curly apostrophes defeat VADER's negation ("don’t" is not "don't"); curly double quotes are just noise.
_QUOTES = (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'))


def prepare_text(text: str) -> str:
    """The text as VADER should see it: straight quotes, multi-word crypto slang joined (see ``_PHRASES``)."""
    for curly, straight in _QUOTES:
        text = text.replace(curly, straight)
    folded = text.casefold()
    if any(word in folded for word in _PHRASE_WORDS):
        for pattern, token in _PHRASES:
            text = pattern.sub(token, text)
    return text


@runtime_checkable
class SentimentModel(Protocol):
    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Compound scores in [-1, 1], one per text, float64."""
        ...


class VaderModel:
    """VADER with ``CRYPTO_LEXICON`` added; the analyzer (it reads its lexicon files) is built once per instance."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self._analyzer.lexicon.update(CRYPTO_LEXICON)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        polarity = self._analyzer.polarity_scores
        return np.fromiter(
            (polarity(prepare_text(t))["compound"] if isinstance(t, str) and t else 0.0 for t in texts),
            dtype=np.float64,
            count=len(texts),
        )


_FACTORIES: dict[str, Callable[[], SentimentModel]] = {"vader": VaderModel}
_INSTANCES: dict[str, SentimentModel] = {}


def available_models() -> list[str]:
    return sorted(_FACTORIES)


def register_model(name: str, factory: Callable[[], SentimentModel]) -> None:
    """Make ``get_model(name)`` build a model with ``factory()`` (called once, on first use)."""
    _FACTORIES[name] = factory
    _INSTANCES.pop(name, None)


def get_model(name: str = DEFAULT_MODEL) -> SentimentModel:
    """The model registered under ``name``, built once per process; ValueError naming the available ones."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown sentiment model {name!r}; available: {', '.join(available_models())}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


# --- article sentiment --------------------------------------------------------------------------------------------


def _utc_ns(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _int_ns(values: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch (UTC) as int64."""
    return _utc_ns(values).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _empty_article_sentiment() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "article_id": pd.Series(dtype=object),
            "symbol": pd.Series(dtype=object),
            "published_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "model": pd.Series(dtype=object),
            "compound": pd.Series(dtype=np.float64),
        }
    )


def score_articles(news: pd.DataFrame, model: SentimentModel, universe: Sequence[str]) -> pd.DataFrame:
    """One row per (article, tagged symbol) with the model's compound score of ``title + ". " + body``.

    Tags are recomputed with ``tag_symbols`` (title, body, categories) for ``universe``, so a universe change
    needs no re-ingest; untagged articles are neither scored nor returned. Each article is scored once.
    Sorted by (published_at, article_id, symbol).
    """
    if news.empty:
        return _empty_article_sentiment()
    titles = news["title"].map(lambda v: v if isinstance(v, str) else "")
    bodies = news["body"].map(lambda v: v if isinstance(v, str) else "") if "body" in news else titles.map(lambda _: "")
    categories = news["categories"] if "categories" in news else pd.Series("", index=news.index)
    tags = [tag_symbols(t, b, universe, c) for t, b, c in zip(titles, bodies, categories, strict=True)]
    tagged = np.fromiter((bool(t) for t in tags), dtype=bool, count=len(tags))
    if not tagged.any():
        return _empty_article_sentiment()
    texts = (titles + ". " + bodies)[tagged].tolist()
    scores = np.clip(np.asarray(model.score(texts), dtype=np.float64), -1.0, 1.0)
    per_article = np.fromiter((len(t) for t in tags if t), dtype=np.intp)
    out = pd.DataFrame(
        {
            "article_id": np.repeat(news["article_id"].to_numpy()[tagged], per_article),
            "symbol": [s for t in tags for s in t],
            "published_at": pd.DatetimeIndex(_utc_ns(news["published_at"]))[tagged].repeat(per_article),
            "model": model.name,
            "compound": np.repeat(scores, per_article),
        }
    )
    out = out.sort_values(["published_at", "article_id", "symbol"], kind="mergesort").reset_index(drop=True)
    return out[list(ARTICLE_SENTIMENT_COLUMNS)]


# --- hourly features 12-14 ----------------------------------------------------------------------------------------


def _window_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """sum(values[lo[i]:hi[i]]) for every i, each summed directly over its own slice.

    Unlike differences of a cumulative sum, the result depends only on the articles in the window, so a
    partition recomputed alone gives the same value as the whole history (no cancellation error near 0).
    """
    if len(lo) == 0:
        return np.zeros(0)
    padded = np.append(values, 0.0)  # reduceat indices must be < len(array); hi may equal len(values)
    idx = np.empty(2 * len(lo), dtype=np.intp)
    idx[0::2] = lo
    idx[1::2] = hi
    sums = np.add.reduceat(padded, idx)[0::2]
    return np.where(hi > lo, sums, 0.0)


def news_coverage_24h(ts: pd.Series, coverage: pd.DataFrame) -> np.ndarray:
    """Share of the 24 hours ``[ts - 23h, ts]`` (hour ``h`` = ``[h, h + 1h)``) lying fully inside the union of
    the successful (``status == "ok"``) answer windows of ``coverage`` (``raw.news_coverage``, any provider).

    One value per ``ts`` in the given order: a multiple of 1/24 in [0, 1].
    """
    windows = ok_windows(coverage)
    t = _int_ns(ts) if len(ts) else np.zeros(0, dtype=np.int64)
    covered = np.zeros(len(t), dtype=np.int64)
    for k in range(24):
        covered += hours_covered(t - k * HOUR_NS, windows)
    return covered / 24.0


def sentiment_hourly(
    bars: pd.DataFrame, article_sentiment: pd.DataFrame, coverage: pd.DataFrame, model: str | None = None
) -> pd.DataFrame:
    """Features 12-14 of features.md (plus ``news_count_24h`` and ``news_coverage_24h``) for every distinct
    (symbol, ts) of ``bars``.

    ``news_coverage_24h`` (see :func:`news_coverage_24h`) is the share of the hours ``[ts - 23h, ts]`` that a
    successful news provider answer of ``coverage`` (``raw.news_coverage`` rows) covered. Where it is 0 nobody
    looked, and the three features are **null** (unknown). Otherwise, for bar ``ts`` the articles tagged with
    the symbol and published in ``[ts - 23h, ts + 1h)`` count (an article at exactly ``ts + 1h`` belongs to the
    next bar): ``sentiment_mean_24h`` is their mean compound (0.0 when none: looked, found nothing),
    ``news_volume_24h = ln(1 + n)``, ``sentiment_momentum_6h`` the mean over ``[ts - 5h, ts + 1h)`` minus
    ``sentiment_mean_24h`` (each mean 0.0 when empty). Windows are by time, so gaps in ``bars`` change nothing.

    ``model`` picks the scores to use when ``article_sentiment`` holds several models (ValueError if it does and
    none is given). Rows with a null compound are ignored; a repeated (article_id, symbol) counts once.
    """
    keys = bars[["symbol", "ts"]].copy()
    keys["ts"] = _utc_ns(keys["ts"])
    keys = keys.drop_duplicates().sort_values(["symbol", "ts"], kind="mergesort").reset_index(drop=True)

    arts = article_sentiment
    if "model" in arts.columns and not arts.empty:
        models = arts["model"].unique()
        if model is None and len(models) > 1:
            raise ValueError(f"article_sentiment holds several models ({', '.join(map(str, models))}); pass model=")
        if model is not None:
            arts = arts[arts["model"] == model]
    arts = arts.dropna(subset=["compound"]).drop_duplicates(["article_id", "symbol"])
    art_ts = _int_ns(arts["published_at"])
    art_sym = arts["symbol"].to_numpy()
    art_val = arts["compound"].to_numpy(dtype=np.float64)

    n = len(keys)
    count24 = np.zeros(n, dtype=np.int64)
    sum24 = np.zeros(n)
    count6 = np.zeros(n, dtype=np.int64)
    sum6 = np.zeros(n)
    bar_ts = _int_ns(keys["ts"])
    bar_sym = keys["symbol"].to_numpy()
    # keys are sorted by symbol: each symbol is one contiguous block of bars
    starts = np.flatnonzero(np.r_[True, bar_sym[1:] != bar_sym[:-1]]) if n else np.zeros(0, dtype=np.intp)
    ends = np.append(starts[1:], n) if n else starts
    for start, end in zip(starts, ends, strict=True):
        mine = art_sym == bar_sym[start]
        if not mine.any():
            continue
        order = np.argsort(art_ts[mine], kind="stable")
        times = art_ts[mine][order]
        vals = art_val[mine][order]
        t = bar_ts[start:end]
        hi = np.searchsorted(times, t + HOUR_NS, side="left")  # published_at < ts + 1h
        lo24 = np.searchsorted(times, t - 23 * HOUR_NS, side="left")  # published_at >= ts - 23h
        lo6 = np.searchsorted(times, t - 5 * HOUR_NS, side="left")  # published_at >= ts - 5h
        count24[start:end] = hi - lo24
        count6[start:end] = hi - lo6
        sum24[start:end] = _window_sums(vals, lo24, hi)
        sum6[start:end] = _window_sums(vals, lo6, hi)

    mean24 = sum24 / np.maximum(count24, 1)  # sums are 0.0 where counts are 0
    mean6 = sum6 / np.maximum(count6, 1)
    coverage24 = news_coverage_24h(keys["ts"], coverage)
    unknown = coverage24 == 0  # nobody looked: unknown, not "no news"
    keys["sentiment_mean_24h"] = np.where(unknown, np.nan, mean24)
    keys["news_volume_24h"] = np.where(unknown, np.nan, np.log1p(count24.astype(np.float64)))
    keys["sentiment_momentum_6h"] = np.where(unknown, np.nan, mean6 - mean24)
    keys["news_count_24h"] = count24
    keys["news_coverage_24h"] = coverage24
    return keys[list(SENTIMENT_HOURLY_COLUMNS)]
