"""News normalisation: canonical URLs, stable article ids, text cleaning and symbol tagging.

Pure functions (pandas in, pandas out); the news clients fetch, these make the ``raw.news`` rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import math
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from crypto_assets.providers.news import OK
from crypto_assets.symbols import COIN_NAMES
from crypto_assets.timegrid import HOUR_NS

NEWS_COLUMNS: tuple[str, ...] = (
    "article_id",
    "published_at",
    "source",
    "title",
    "body",
    "url",
    "provider",
    "categories",
    "symbols",
)

_ID_LENGTH = 20  # hex characters of the sha1: 80 bits, collision-free at any realistic news volume


# --- URLs and ids -------------------------------------------------------------------------------------------------


def canonical_url(url: str | None) -> str:
    """The URL as used for identity: lower-case scheme and host, no default port, no ``utm_*`` parameters,
    no fragment, no trailing slash, remaining query parameters sorted (their encoding kept as given).

    Returns "" for a missing or blank URL.
    """
    if not isinstance(url, str):
        return ""
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 host: keep it, minus whitespace, as its own identity
        return url
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    if (scheme == "http" and netloc.endswith(":80")) or (scheme == "https" and netloc.endswith(":443")):
        netloc = netloc.rsplit(":", 1)[0]
    params = [p for p in parts.query.split("&") if p and not p.split("=", 1)[0].lower().startswith("utm_")]
    query = "&".join(sorted(params))
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, query, ""))


def _normalise_title(title: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", clean_text(title).casefold()).split())


def article_id(url: str | None, title: str | None, source: str | None, published_at: object) -> str:
    """Stable id: sha1 hex (20 chars) of the canonical URL, so re-fetches and other sources of the same URL agree.

    Without a URL (e.g. Reuters rows) it hashes the normalised title (cleaned, case-folded, punctuation removed),
    the case-folded source and ``published_at`` floored to the minute (UTC).
    """
    return _id_of_canonical(canonical_url(url), title, source, published_at)


def _id_of_canonical(canon: str, title: str | None, source: str | None, published_at: object) -> str:
    """``article_id`` of an already canonical URL ("" when there is none)."""
    if canon:
        key = "url\x00" + canon
    else:
        ts = pd.Timestamp(published_at)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        src = source.strip().casefold() if isinstance(source, str) else ""
        key = "\x00".join(("text", _normalise_title(title or ""), src, ts.floor("min").strftime("%Y-%m-%dT%H:%MZ")))
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:_ID_LENGTH]


# --- text cleaning ------------------------------------------------------------------------------------------------

# Escapes written out as text by an upstream exporter, e.g. the four characters "\x93".
_LITERAL_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[rnt])")
_TAG_RE = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>|</?[A-Za-z][^<>]*>", re.S | re.I)
# zero-width and soft-hyphen characters, lone surrogates, C0 controls other than whitespace
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad\ud800-\udfff\x00-\x08\x0e-\x1f\x7f]")
_C1_RE = re.compile("[\u0080-\u009f]")
_ORPHAN_A_CIRC_RE = re.compile("\u00c2(?=\\s|$)")
# What any cleaning step below acts on: non-ASCII, control characters, markup, entities, written-out escapes.
_NEEDS_CLEANING_RE = re.compile(r"[^\t\n\x0b\x0c\r\x20-\x7e]|[<&\\]")


def _char_to_byte() -> dict[str, int]:
    """Characters that stand for a byte >= 0x80 when UTF-8 was decoded as latin-1 or cp1252."""
    mapping = {chr(b): b for b in range(0x80, 0x100)}  # latin-1
    for b in range(0x80, 0xA0):
        with contextlib.suppress(UnicodeDecodeError):  # 0x81, 0x8d, 0x8f, 0x90, 0x9d are undefined in cp1252
            mapping[bytes([b]).decode("cp1252")] = b
    return mapping


_CHAR_TO_BYTE = _char_to_byte()
_CONT = "[" + "".join(re.escape(c) for c, b in _CHAR_TO_BYTE.items() if 0x80 <= b <= 0xBF) + "]"
_MOJIBAKE_RE = re.compile(f"[\u00c2-\u00df]{_CONT}|[\u00e0-\u00ef]{_CONT}{{2}}|[\u00f0-\u00f4]{_CONT}{{3}}")


def _plausible(fixed: str, original: str) -> bool:
    """Repairs are accepted only when they yield what English news plausibly contains.

    Latin-1 letters and symbols, punctuation, currency and emoji are accepted outright (their mojibake, "Ã£", "â€™",
    "ðŸš€", is never real text); other Latin letters only when the original holds a C1 control (never real text
    either), so a real "È”" is left alone.
    """
    cp = ord(fixed)
    if 0xA0 <= cp <= 0xFF or 0x2000 <= cp <= 0x21FF or cp >= 0x1F000:
        return True
    return 0x100 <= cp <= 0x24F and _C1_RE.search(original) is not None


def _fix_literal_escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code in ("r", "n", "t"):
        return " "
    value = int(code[1:], 16)
    if code[0] == "u":
        return "" if 0xD800 <= value <= 0xDFFF else chr(value)
    if 0x80 <= value <= 0x9F:
        # The last byte of a UTF-8 "E2 80 xx" sequence whose first two bytes were lost: U+2000 + (xx - 0x80).
        # In the bundled real data "\x93" stands where an en dash belongs ("Bottom Could be Forming \x93 Analysts")
        # and "\x9c...\x9d" wrap quotations, i.e. U+2013 and U+201C/U+201D; cp1252 would give nonsense there.
        return chr(0x2000 + value - 0x80)
    if value == 0xA0 or value < 0x20:
        return " "
    return match.group(0)


def _fix_mojibake(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        fixed = bytes(_CHAR_TO_BYTE[c] for c in text).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        return text
    return fixed if _plausible(fixed, text) else text


def _fix_c1(match: re.Match[str]) -> str:
    # A lone C1 control is a cp1252 byte decoded as latin-1: 0x93/0x94 are curly double quotes.
    try:
        return match.group(0).encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:
        return ""


def clean_text(text: object) -> str:
    """Plain, single-spaced text from a title or summary as providers deliver it.

    Strips HTML tags (also double-escaped ones) and entities, and repairs mojibake where the repair is unambiguous:
    escapes written out as text (``\\x93``, ``\\xa0``, ``\\u200b``, ``\\r\\n``), UTF-8 read as latin-1/cp1252
    (``SÃ£o`` -> ``São``, ``Â\\xa0`` -> space) and lone cp1252 bytes read as latin-1. Never raises: None, NaN
    and non-text give "", bytes are decoded leniently.
    """
    if text is None:
        return ""
    if isinstance(text, float) and math.isnan(text):
        return ""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(text).decode("cp1252", errors="replace")
    if not isinstance(text, str):
        if text is pd.NA or text is pd.NaT:
            return ""
        text = str(text)
    if not _NEEDS_CLEANING_RE.search(text):  # most titles and summaries: every step below would leave it as is
        return " ".join(text.split())
    text = _LITERAL_ESCAPE_RE.sub(_fix_literal_escape, text)
    text = _TAG_RE.sub(" ", text)
    text = html.unescape(text)
    text = _TAG_RE.sub(" ", text)  # markup that arrived HTML-escaped
    text = _MOJIBAKE_RE.sub(_fix_mojibake, text)
    text = _ORPHAN_A_CIRC_RE.sub(" ", text)  # "Â" left over from a UTF-8 NBSP whose second byte was lost
    text = _C1_RE.sub(_fix_c1, text)
    text = _INVISIBLE_RE.sub("", text)
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


# --- symbol tagging -----------------------------------------------------------------------------------------------

_ALNUM_BEFORE = r"(?<![^\W_])"  # not preceded by a letter or digit
_ALNUM_AFTER = r"(?![^\W_])"

# Tickers that are also everyday acronyms: a bare ticker match is vetoed when the article has this context.
# ADA is also the Americans with Disabilities Act (US news about ADA lawsuits, "ADA-compliant" sites).
_TICKER_VETO: dict[str, re.Pattern[str]] = {
    "ADA": re.compile(r"disabilit|wheelchair|\bADA[\s-]+complian", re.I),
}


class _Tagger:
    """Two scans per article: one case-sensitive for the tickers, one case-insensitive for the coin names."""

    def __init__(self, universe: tuple[str, ...]) -> None:
        self.universe = universe
        self.by_name: dict[str, str] = {}  # case-folded, single-spaced name (or ticker) -> symbol
        for sym in universe:
            self.by_name[sym.casefold()] = sym
            for name in COIN_NAMES.get(sym, ()):
                self.by_name[" ".join(name.split()).casefold()] = sym
        tickers = "|".join(re.escape(s) for s in sorted(universe, key=len, reverse=True))
        # The lookaheads on a first letter let the scans skip most positions before trying the lookbehind.
        first_letters = "".join(sorted({re.escape(s[0]) for s in universe}))
        self.ticker_re = re.compile(f"(?=[{first_letters}]){_ALNUM_BEFORE}(?:{tickers}){_ALNUM_AFTER}")
        names = sorted({n for s in universe for n in COIN_NAMES.get(s, ())}, key=len, reverse=True)
        alts = "|".join(r"\s+".join(re.escape(w) for w in n.split()) for n in names)
        initials = "".join(sorted({re.escape(n[0]) for n in names}))
        self.name_re = re.compile(f"(?=[{initials}]){_ALNUM_BEFORE}(?:{alts}){_ALNUM_AFTER}", re.I) if names else None

    def __call__(self, text: str, tags: set[str]) -> list[str]:
        hits = {self.by_name[t] for t in tags if t in self.by_name}
        if self.name_re is not None:
            hits.update(self.by_name[" ".join(m.split()).casefold()] for m in self.name_re.findall(text))
        for ticker in set(self.ticker_re.findall(text)) - hits:
            veto = _TICKER_VETO.get(ticker)
            if veto is None or not veto.search(text):
                hits.add(ticker)
        return [sym for sym in self.universe if sym in hits]


@lru_cache(maxsize=32)
def _tagger(universe: tuple[str, ...]) -> _Tagger:
    return _Tagger(universe)


def tag_symbols(title: str, body: str, universe: Sequence[str], categories: str = "") -> list[str]:
    """The universe symbols an article mentions, in universe order.

    - coin names from ``COIN_NAMES``: whole words, case-insensitive ("bitcoin", "Ether's"; not "ethereal",
      "Ethernet"); symbols without names are matched by ticker only;
    - tickers: whole words, case-sensitive upper case ("$SOL", "SOL/USD"; not "solution", Spanish "sol");
    - provider categories (``"BTC|ETH|Regulation"``): a tag equal to a symbol (any case) or to a coin name.

    ADA rule: a bare "ADA" ticker does not count when the article also contains disability-law context
    ("disabilit…" as in Americans with Disabilities Act, "wheelchair", "ADA compliance/compliant"). "Cardano"
    and an ``ADA`` category still tag ADA.
    """
    return list(
        _tag(
            title if isinstance(title, str) else "",
            body if isinstance(body, str) else "",
            tuple(universe),
            categories if isinstance(categories, str) else "",
        )
    )


# raw.news tags every article of a partition, and article_sentiment tags the same articles again right
# after (in the same process during a bootstrap or refresh): the second pass is a cache hit.
@lru_cache(maxsize=16_384)
def _tag(title: str, body: str, universe: tuple[str, ...], categories: str) -> tuple[str, ...]:
    tags = {" ".join(t.split()).casefold() for t in categories.split("|")} if categories else set()
    return tuple(_tagger(universe)(f"{title}\n{body}", tags))


# --- the raw.news frame -------------------------------------------------------------------------------------------


def _to_utc(values: pd.Series) -> pd.Series:
    """UTC timestamps from datetimes (naive = UTC), epoch seconds or ISO/RFC-822 strings; NaT where unparseable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(values):
        ts = pd.to_datetime(values, unit="s", utc=True, errors="coerce")
    else:
        ts = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        retry = ts.isna() & values.notna()
        if retry.any():
            ts[retry] = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
    return ts.astype("datetime64[ns, UTC]")


def _text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[name].map(lambda v: v if isinstance(v, str) else "").astype(object)


def _empty_news() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in NEWS_COLUMNS})
    out["published_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    return out


def normalize_news(raw: pd.DataFrame, universe: Sequence[str]) -> pd.DataFrame:
    """The ``raw.news`` rows from the clients' frame (published_at, source, title, body, url, provider,
    categories, external_id).

    Titles and bodies are cleaned, URLs canonicalised ("" becomes None), ``published_at`` is UTC floored to the
    second; rows with an unparseable time or an empty title are dropped. Duplicates (same ``article_id``, within
    or across sources) collapse to one row: its content and provider come from the first row in the frame's order
    (list providers in order of preference), its ``published_at`` is the earliest of the copies. ``symbols`` is
    the "|"-joined ``tag_symbols`` result ("" when none). Sorted by (published_at, article_id).
    """
    if raw.empty:
        return _empty_news()
    frame = raw.reset_index(drop=True)
    published = _to_utc(frame["published_at"]).dt.floor("s")
    titles = [clean_text(v) for v in frame["title"]]
    bodies = [clean_text(v) for v in frame["body"]] if "body" in frame else [""] * len(frame)
    urls = [canonical_url(v) for v in frame["url"]] if "url" in frame else [""] * len(frame)
    out = pd.DataFrame(
        {
            "published_at": published,
            "source": _text_column(frame, "source"),
            "title": titles,
            "body": bodies,
            "url": urls,
            "provider": _text_column(frame, "provider"),
            "categories": _text_column(frame, "categories"),
        }
    )
    out = out[(out["title"] != "") & out["published_at"].notna()]
    if out.empty:
        return _empty_news()
    out["article_id"] = [  # the urls are canonical already
        _id_of_canonical(u, t, s, p)
        for u, t, s, p in zip(out["url"], out["title"], out["source"], out["published_at"], strict=True)
    ]
    earliest = out.groupby("article_id", sort=False)["published_at"].transform("min")
    keep = ~out["article_id"].duplicated(keep="first")
    out = out[keep].copy()
    out["published_at"] = earliest[keep]
    out["symbols"] = [
        "|".join(tag_symbols(t, b, universe, c))
        for t, b, c in zip(out["title"], out["body"], out["categories"], strict=True)
    ]
    out["url"] = out["url"].map(lambda u: u or None).astype(object)
    out = out.sort_values(["published_at", "article_id"], kind="mergesort").reset_index(drop=True)
    return out[list(NEWS_COLUMNS)]


# --- coverage (raw.news_coverage) ------------------------------------------------------------------------------

COVERAGE_COLUMNS: tuple[str, ...] = (
    "provider",
    "window_start",
    "window_end",
    "status",
    "articles",
    "fetched_at",
    "detail",
)
_DAY = pd.Timedelta(days=1)


def empty_coverage() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in COVERAGE_COLUMNS})
    for column in ("window_start", "window_end", "fetched_at"):
        frame[column] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["articles"] = pd.Series(dtype="int64")
    return frame


def coverage_rows(windows: Sequence[dict[str, object]], articles: pd.DataFrame) -> pd.DataFrame:
    """``raw.news_coverage`` rows: each answer window split at UTC midnights, so a day partition owns its rows.

    ``windows``: dicts with provider, start, end, status, detail, fetched_at. ``articles``: the raw articles
    (published_at, provider) that the answers returned; each piece of an ``ok`` window counts its own.
    """
    rows: list[dict[str, object]] = []
    published = _to_utc(articles["published_at"]) if not articles.empty else pd.Series(dtype="datetime64[ns, UTC]")
    for item in windows:
        start, end = pd.Timestamp(item["start"]), pd.Timestamp(item["end"])
        cut = start
        while cut < end:
            piece_end = min(end, cut.floor("D") + _DAY)
            count = 0
            if item["status"] == OK and not articles.empty:
                mine = articles["provider"] == item["provider"]
                count = int((mine & (published >= cut) & (published < piece_end)).sum())
            rows.append(
                {
                    "provider": item["provider"],
                    "window_start": cut,
                    "window_end": piece_end,
                    "status": item["status"],
                    "articles": count,
                    "fetched_at": pd.Timestamp(item["fetched_at"]),
                    "detail": str(item.get("detail") or ""),
                }
            )
            cut = piece_end
    if not rows:
        return empty_coverage()
    frame = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    for column in ("window_start", "window_end", "fetched_at"):
        frame[column] = _to_utc(frame[column])
    frame["articles"] = frame["articles"].astype("int64")
    return frame.sort_values(["provider", "window_start"], kind="mergesort", ignore_index=True)


def carried_forward(
    fresh: pd.DataFrame, stored: pd.DataFrame, providers: Sequence[str]
) -> tuple[pd.DataFrame, list[tuple[str, pd.Timestamp]]]:
    """What a re-fetch keeps of the stored coverage: for each of ``providers`` and UTC day where the fresh answer
    covered nothing but the stored coverage did, the stored ``ok`` coverage rows stay (a source that is down now
    does not erase what it answered before), and so do the provider's stored articles of that day
    (:func:`carried_articles`).

    Returns (the coverage rows to write: fresh ones, minus the fresh failed/skipped rows of carried days, plus
    the carried rows; the carried (provider, UTC day) pairs, sorted).
    """
    if stored.empty:
        return fresh, []
    fresh_day = fresh["window_start"].dt.floor("D")
    stored_day = stored["window_start"].dt.floor("D")
    fresh_ok = set(zip(fresh.loc[fresh["status"] == OK, "provider"], fresh_day[fresh["status"] == OK], strict=True))
    stored_ok = stored["status"] == OK
    carried = {
        (provider, day)
        for provider, day in zip(stored.loc[stored_ok, "provider"], stored_day[stored_ok], strict=True)
        if provider in providers and (provider, day) not in fresh_ok
    }
    if not carried:
        return fresh, []
    keep_fresh = [(provider, day) not in carried for provider, day in zip(fresh["provider"], fresh_day, strict=True)]
    keep_stored = stored_ok & pd.Series(
        [(p, d) in carried for p, d in zip(stored["provider"], stored_day, strict=True)], index=stored.index
    )
    rows = pd.concat([fresh[keep_fresh], stored[keep_stored][list(COVERAGE_COLUMNS)]], ignore_index=True)
    rows = rows.sort_values(["provider", "window_start"], kind="mergesort", ignore_index=True)
    return rows, sorted(carried)


def carried_articles(stored_news: pd.DataFrame, carried: Sequence[tuple[str, pd.Timestamp]]) -> pd.DataFrame:
    """The rows of ``stored_news`` (``raw.news``) whose (provider, UTC day of ``published_at``) is ``carried``."""
    wanted = set(carried)
    if stored_news.empty or not wanted:
        return stored_news.iloc[:0]
    news_day = _to_utc(stored_news["published_at"]).dt.floor("D")
    keep = [(p, d) in wanted for p, d in zip(stored_news["provider"], news_day, strict=True)]
    return stored_news[keep]


def ok_windows(coverage: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The union of the ``ok`` windows of ``coverage`` (``raw.news_coverage`` rows, any provider) as sorted,
    disjoint ``[start, end)`` in ns since the epoch (UTC).

    Windows that overlap or touch are merged, so an hour straddling two adjacent answers is inside the union.
    """
    missing = {"window_start", "window_end", "status"} - set(coverage.columns)
    if missing:
        raise ValueError(f"coverage frame lacks columns {sorted(missing)} (raw.news_coverage)")
    ok = coverage[coverage["status"] == OK]
    if ok.empty:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = _to_utc(ok["window_start"]).array.asi8
    ends = _to_utc(ok["window_end"]).array.asi8
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)  # the furthest end among the windows starting no later
    new = np.r_[True, starts[1:] > reach[:-1]]  # a window starting after everything before it ends
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(starts) - 1]
    return starts[first], reach[last]  # reach at a merged window's last member is its end


def hours_covered(hour_starts_ns: np.ndarray, windows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """For each hour ``[h, h + 1h)`` (``h`` in ns since the epoch): whether it lies fully inside one of the
    merged ``windows`` of :func:`ok_windows`."""
    starts, ends = windows
    if len(starts) == 0:
        return np.zeros(len(hour_starts_ns), dtype=bool)
    idx = np.searchsorted(starts, hour_starts_ns, side="right") - 1  # the last window starting by then
    inside = idx >= 0
    return inside & (ends[np.where(inside, idx, 0)] >= hour_starts_ns + HOUR_NS)


def covered_hours(coverage: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """For each hour in [start, end): whether it lies fully inside the union of ``ok`` windows (any provider)."""
    hours = pd.date_range(start, end, freq="h", inclusive="left", tz="UTC").as_unit("ns")
    return pd.Series(hours_covered(hours.asi8, ok_windows(coverage)), index=hours)
