"""A local HTTP server that replays the bundled real data in each provider's own API format.

The pipeline's HTTP clients talk to it exactly as to the live APIs (point them at it with the
``CRYPTO_ASSETS_*_URL`` variables from ``ReplayServer.env()``), which makes the offline demo and the
tests exercise the same code paths, including paging limits, error envelopes and injected faults.
Only the stdlib ``http.server`` is used, so it starts in milliseconds and needs nothing installed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import numpy as np

from crypto_assets.errors import ConfigError
from crypto_assets.replay.data import BUNDLED_SYMBOLS, WINDOW_END, load_bundled_news, load_bundled_prices
from crypto_assets.replay.faults import (
    CORRUPTIONS,
    FAULT_KINDS,
    PROVIDERS,
    Fault,
    FaultConfig,
    corrupt_bars,
    decide,
    junk,
    shuffle_rows,
)
from crypto_assets.symbols import provider_symbol, validate_symbol

DEFAULT_PORT = 8765
DEFAULT_CLOCK = WINDOW_END  # 2022-08-02T00:00:00Z: every bundled bar is closed
HOUR = 3600

BINANCE_MAX_LIMIT, BINANCE_DEFAULT_LIMIT, BINANCE_KLINES_WEIGHT = 1000, 500, 2
COINBASE_MAX_CANDLES = 300
KRAKEN_WINDOW = 720
CRYPTOCOMPARE_MAX_LIMIT, CRYPTOCOMPARE_DEFAULT_LIMIT = 2000, 168
NEWS_PAGE_SIZE = 50
RSS_ITEMS = 20
RSS_UTM = "utm_source=rss&utm_medium=rss"

# Kraken's result key for a pair differs from the pair name for its oldest markets.
KRAKEN_RESULT_KEYS = {"XBTUSD": "XXBTZUSD", "ETHUSD": "XETHZUSD", "XRPUSD": "XXRPZUSD"}


@dataclass(frozen=True)
class Feed:
    name: str
    title: str
    link: str
    sources: frozenset[str]


# Publisher feeds take the publisher's own rows; "reddit" takes the other r/CryptoCurrency link posts.
# Reuters rows (no URL; Reuters has no public RSS feed) are served by CryptoCompare news only.
FEEDS: tuple[Feed, ...] = (
    Feed(
        "coindesk",
        "CoinDesk: Bitcoin, Ethereum, Crypto News and Price Data",
        "https://www.coindesk.com/",
        frozenset({"coindesk.com"}),
    ),
    Feed(
        "cointelegraph",
        "Cointelegraph.com News",
        "https://cointelegraph.com",
        frozenset({"CoinTelegraph", "cointelegraph.com"}),
    ),
    Feed("decrypt", "Decrypt", "https://decrypt.co", frozenset({"decrypt.co"})),
    Feed("cryptopotato", "CryptoPotato", "https://cryptopotato.com", frozenset({"CryptoPotato", "cryptopotato.com"})),
    Feed("cryptonews", "Cryptonews.com", "https://cryptonews.com", frozenset({"CryptoNews", "cryptonews.com"})),
    Feed("reddit", "r/CryptoCurrency link posts", "https://www.reddit.com/r/CryptoCurrency/", frozenset()),
)
REDDIT_DATASET_PREFIX = "cryptobuzz_reddit"


# --------------------------------------------------------------------------------------------- data


@dataclass
class _Series:
    opens: np.ndarray  # bar open times, epoch seconds, ascending
    values: np.ndarray  # (n, 5): open, high, low, close, volume

    def bars(self, lo: int, hi: int, *, first: int | None = None, last: int | None = None) -> list[list[Any]]:
        """Bars with open time in [lo, hi]; only the first or last ``n`` of them when asked."""
        i, j = int(np.searchsorted(self.opens, lo, "left")), int(np.searchsorted(self.opens, hi, "right"))
        if first is not None:
            j = min(j, i + first)
        if last is not None:
            i = max(i, j - last)
        return [[int(t), *vals] for t, vals in zip(self.opens[i:j].tolist(), self.values[i:j].tolist(), strict=True)]

    def last_open_at_or_before(self, t: int) -> int | None:
        i = int(np.searchsorted(self.opens, t, "right"))
        return int(self.opens[i - 1]) if i else None


@dataclass
class _NewsIndex:
    items: list[dict[str, Any]]  # CryptoCompare news items, newest first
    published: np.ndarray  # -published_on of items (ascending, for searchsorted)
    feeds: dict[str, list[int]] = field(default_factory=dict)  # feed -> indexes into items, newest first

    def newest_at_or_before(self, t: int) -> int:
        """Index of the first item (newest first) published at or before t."""
        return int(np.searchsorted(self.published, -t, "left"))


def article_id(url: str, title: str) -> str:
    """A stable numeric id like CryptoCompare's, from the URL (or the title when there is none)."""
    return str(int(hashlib.sha1((url or title).encode("utf-8")).hexdigest()[:12], 16))


def feed_of(source: str, dataset: str) -> str | None:
    for feed in FEEDS:
        if source in feed.sources:
            return feed.name
    return "reddit" if dataset.startswith(REDDIT_DATASET_PREFIX) else None


@lru_cache(maxsize=1)
def _series() -> dict[str, _Series]:
    prices = load_bundled_prices()
    series = {}
    for symbol, frame in prices.groupby("symbol", sort=False):
        opens = (frame["ts"].astype("int64") // 10**9).to_numpy(dtype=np.int64)
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
        series[str(symbol)] = _Series(opens, values)
    return series


def _with_aliases(series: dict[str, _Series], aliases: Mapping[str, str]) -> dict[str, _Series]:
    """``series`` plus each alias serving its bundled symbol's bars (the cached dict is not modified)."""
    result = dict(series)
    for alias, target in aliases.items():
        validate_symbol(alias)
        if alias in series:
            raise ConfigError(f"alias {alias!r} would hide the bundled symbol {alias}: choose another name")
        if target not in series:
            raise ConfigError(f"alias {alias!r}: {target!r} is not a bundled symbol ({', '.join(series)})")
        result[alias] = series[target]
    return result


@lru_cache(maxsize=1)
def _news_index() -> _NewsIndex:
    news = load_bundled_news()
    news["published_on"] = news["published_at"].astype("int64") // 10**9
    news["id"] = [article_id(u, t) for u, t in zip(news["url"], news["title"], strict=True)]
    news = news.sort_values(["published_on", "id"], ascending=[False, False], ignore_index=True)
    items, feeds = [], {feed.name: [] for feed in FEEDS}
    for i, row in enumerate(news.itertuples(index=False)):
        items.append(
            {
                "id": row.id,
                "guid": row.url or f"urn:crypto-assets-replay:{row.id}",
                "published_on": int(row.published_on),
                "imageurl": "",
                "title": row.title,
                "url": row.url,
                "body": row.body,
                "tags": "",
                "lang": "EN",
                "categories": "",
                "source": row.source,
                "source_info": {"name": row.source, "lang": "EN", "img": ""},
            }
        )
        feed = feed_of(row.source, row.dataset)
        if feed is not None:
            feeds[feed].append(i)
    return _NewsIndex(items, -news["published_on"].to_numpy(dtype=np.int64), feeds)


# ---------------------------------------------------------------------------------------- responses


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _Reply(Exception):  # control flow: carries a finished response out of a route
    def __init__(self, response: Response) -> None:
        self.response = response


def json_response(payload: Any, status: int = 200, **headers: str) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json", dict(headers))


def html_response(status: int, title: str, text: str) -> Response:
    page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
    page += f"<p>{text}</p>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    return Response(status, page.encode("utf-8"), "text/html; charset=utf-8")


def down_response() -> Response:
    return html_response(503, "503 Service Unavailable", "No server is available to handle this request.")


def rate_limited(provider: str) -> Response:
    bodies: dict[str, Any] = {
        "binance": {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."},
        "coinbase": {"message": "Public rate limit exceeded"},
        "kraken": {"error": ["EGeneral:Too many requests"]},
        "cryptocompare": {
            "Response": "Error",
            "Message": "You are over your rate limit please upgrade your account!",
            "HasWarning": False,
            "Type": 99,
            "RateLimit": {},
            "Data": {},
        },
    }
    if provider not in bodies:
        return Response(429, b"Too Many Requests", "text/plain; charset=utf-8", {"Retry-After": "1"})
    return json_response(bodies[provider], 429, **{"Retry-After": "1"})


def server_error(provider: str, status: int) -> Response:
    bodies: dict[str, Any] = {
        "binance": {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
        "coinbase": {"message": "Internal server error"},
        "kraken": {"error": ["EService:Unavailable"]},
        "cryptocompare": {"Response": "Error", "Message": "Internal server error", "Type": 0, "Data": {}},
    }
    if provider not in bodies:
        return html_response(status, f"{status} Server Error", "The server encountered an internal error.")
    return json_response(bodies[provider], status)


def html_fault(status: int) -> Response:
    if status == 200:
        page = (
            "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
            "<h1>Checking your browser before accessing the site.</h1>"
            "<p>This process is automatic. Your browser will redirect to your requested content shortly.</p>"
            "</body></html>"
        )
        return Response(200, page.encode("utf-8"), "text/html; charset=utf-8")
    return html_response(status, f"{status} Bad Gateway", "The upstream server returned an invalid response.")


# ---------------------------------------------------------------------------------------- helpers


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int_or(value: str | None, on_error: Callable[[], Response]) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _Reply(on_error()) from None


def _parse_time(value: str) -> int:
    """ISO 8601 (naive means UTC) or epoch seconds -> epoch seconds."""
    try:
        return int(float(value))
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return math.floor(parsed.timestamp())


def parse_clock(value: str | datetime) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"clock {value!r} is not an ISO 8601 time such as 2022-08-02T00:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _money(value: Any) -> Any:
    return value if isinstance(value, str) else f"{value:.8f}"


def _plain(value: Any) -> Any:
    return value if isinstance(value, str) else repr(float(value))


def _floor_hour(t: int) -> int:
    return t - t % HOUR


def _last_closed_open(clock_s: int) -> int:
    """Open time of the latest bar that has closed at the clock."""
    return _floor_hour(clock_s) - HOUR


# ------------------------------------------------------------------------------------------- server


class ReplayServer:
    """The replay HTTP server; use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        clock: datetime | None = None,
        *,
        log_requests: bool = False,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """``aliases`` (benchmark-only) maps extra symbols to bundled ones, e.g. ``{"ZZ01": "BTC"}``: every
        provider then serves the BTC bars under ZZ01 too, so benchmarks can scale the universe past the
        six bundled symbols. The bars are the bundled symbol's, so never mistake them for real data."""
        self.host = host
        self.port = port
        self.log_requests = log_requests
        self._faults = faults or FaultConfig()
        self._clock = parse_clock(clock or DEFAULT_CLOCK)
        self._lock = threading.Lock()
        self._fault_counter = 0
        self._stats = dict.fromkeys(PROVIDERS, 0)
        self._faults_served: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._weight: tuple[int, int] = (0, 0)  # (minute, used weight) for Binance's header
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Load (and cache) the bundled data up front so the first request is as fast as the others.
        self._series = _with_aliases(_series(), aliases or {})
        self._news = _news_index()

    # -- lifecycle
    def start(self) -> ReplayServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- addresses
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, provider: str) -> str:
        if provider not in PROVIDERS:
            raise ConfigError(f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)}")
        return f"{self.url}/{provider}"

    def rss_feed_urls(self) -> list[str]:
        return [f"{self.url}/rss/{feed.name}.xml" for feed in FEEDS]

    def env(self) -> dict[str, str]:
        """``CRYPTO_ASSETS_*`` variables that point every replayed provider at this server.

        Client-side rate limits are off: they protect the real providers, and this server is not one.
        Retries, ``Retry-After``, timeouts and circuit breaking still apply to what it serves.
        """
        env = {f"CRYPTO_ASSETS_{p.upper()}_URL": self.base_url(p) for p in ("binance", "coinbase", "kraken")}
        env["CRYPTO_ASSETS_CRYPTOCOMPARE_URL"] = self.base_url("cryptocompare")
        env["CRYPTO_ASSETS_RSS_FEEDS"] = ",".join(self.rss_feed_urls())
        env["CRYPTO_ASSETS_RATE_LIMITS"] = "off"
        return env

    # -- state
    def stats(self) -> dict[str, int]:
        """Provider requests served so far (faulted ones included), per provider."""
        with self._lock:
            return dict(self._stats)

    def fault_stats(self) -> dict[str, int]:
        """Random faults served so far, per kind (down providers and down days are not counted here)."""
        with self._lock:
            return dict(self._faults_served)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = dict.fromkeys(PROVIDERS, 0)
            self._faults_served = dict.fromkeys(FAULT_KINDS, 0)

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    def set_faults(self, faults: FaultConfig | Mapping[str, Any] | None) -> None:
        """Replace the fault configuration; restarts the deterministic fault stream at request 0."""
        config = FaultConfig.from_dict(dict(faults)) if isinstance(faults, Mapping) else (faults or FaultConfig())
        with self._lock:
            self._faults = config
            self._fault_counter = 0

    @property
    def clock(self) -> datetime:
        return self._clock

    def set_clock(self, now: datetime | str) -> None:
        self._clock = parse_clock(now)

    # -- request handling (called from handler threads)
    def _admit(self, provider: str) -> tuple[FaultConfig, Fault | None, int]:
        with self._lock:
            self._stats[provider] += 1
            config, n = self._faults, self._fault_counter
            self._fault_counter += 1
            fault = None if provider in config.down else decide(config, n)
            if fault is not None:
                self._faults_served[fault.kind] += 1
            return config, fault, int(self._clock.timestamp())

    def _binance_weight(self) -> int:
        minute = int(time.time() // 60)
        with self._lock:
            used = (self._weight[1] if self._weight[0] == minute else 0) + BINANCE_KLINES_WEIGHT
            self._weight = (minute, used)
        return used

    def handle(self, method: str, raw_path: str, body: bytes) -> Response:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        segments = [s for s in path.split("/") if s]
        if not segments:
            return json_response({"service": "crypto_assets replay", "providers": list(PROVIDERS)})
        if segments[0].startswith("_"):
            return self._admin(method, segments, body)
        provider = segments[0]
        if provider not in PROVIDERS:
            return Response(404, b"Not Found", "text/plain; charset=utf-8")
        config, fault, clock_s = self._admit(provider)
        if provider in config.down:
            return down_response()
        if fault is not None and fault.kind == "429":
            return rate_limited(provider)
        if fault is not None and fault.kind == "5xx":
            return server_error(provider, fault.status)
        if fault is not None and fault.kind == "html":
            return html_fault(fault.status)
        route = _Route(self, provider, config, clock_s)
        try:
            response = route.dispatch(method, "/" + "/".join(segments[1:]), query)
        except _Reply as reply:
            response = reply.response
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(config.slow_seconds)
        if fault is not None and fault.kind == "truncated":
            response.body = response.body[: len(response.body) // 2]
        return response

    def _admin(self, method: str, segments: list[str], body: bytes) -> Response:
        name = segments[0]
        try:
            if name == "_health" and method == "GET":
                return json_response(
                    {"status": "ok", "clock": self._clock.isoformat(), "symbols": list(self._series), "url": self.url}
                )
            if name == "_stats" and method == "GET":
                return json_response(self.stats())
            if name == "_stats" and method == "POST" and segments[1:] == ["reset"]:
                self.reset_stats()
                return json_response(self.stats())
            if name == "_faults" and method == "GET":
                return json_response({"config": self._faults.to_dict(), "served": self.fault_stats()})
            if name == "_faults" and method == "POST":
                self.set_faults(FaultConfig.from_json(body))
                return json_response(self._faults.to_dict())
            if name == "_clock" and method == "GET":
                return json_response({"now": self._clock.isoformat()})
            if name == "_clock" and method == "POST":
                payload = json.loads(body or b"{}")
                if not isinstance(payload, dict) or "now" not in payload:
                    raise ConfigError('expected a JSON object {"now": "2022-08-02T00:00:00Z"}')
                self.set_clock(str(payload["now"]))
                return json_response({"now": self._clock.isoformat()})
        except (ConfigError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"error": f"no admin endpoint {method} /{'/'.join(segments)}"}, 404)


class _Route:
    """One provider request: routing, parameters, selection, formatting and corruption."""

    def __init__(self, server: ReplayServer, provider: str, config: FaultConfig, clock_s: int) -> None:
        self.server = server
        self.provider = provider
        self.config = config
        self.clock_s = clock_s
        self.corruptions = config.corrupt.get(provider, [])

    def dispatch(self, method: str, path: str, query: Mapping[str, list[str]]) -> Response:
        p = self.provider
        if method != "GET":
            return Response(405, b"Method Not Allowed", "text/plain; charset=utf-8")
        if p == "binance" and path == "/api/v3/klines":
            return self.binance_klines(query)
        if p == "coinbase" and path.startswith("/products/") and path.endswith("/candles"):
            product = path[len("/products/") : -len("/candles")]
            if "/" not in product:
                return self.coinbase_candles(product, query)
        if p == "kraken" and path == "/0/public/OHLC":
            return self.kraken_ohlc(query)
        if p == "cryptocompare" and path == "/data/v2/histohour":
            return self.cryptocompare_histohour(query)
        if p == "cryptocompare" and path == "/data/v2/news":
            return self.cryptocompare_news(query)
        if p == "rss" and path.startswith("/") and path.endswith(".xml") and path.count("/") == 1:
            return self.rss(path[1:-4])
        return self.not_found()

    def not_found(self) -> Response:
        if self.provider == "cryptocompare":
            return json_response({"Response": "Error", "Message": "Path does not exist", "Type": 0, "Data": {}})
        if self.provider == "kraken":
            return json_response({"error": ["EGeneral:Unknown method"]}, 404)
        return Response(404, b"Not Found", "text/plain; charset=utf-8")

    # -- shared price plumbing
    def check_down_days(self, lo_s: int, hi_s: int) -> None:
        if self.config.overlaps_down_day(lo_s, max(lo_s, hi_s)):
            raise _Reply(down_response())

    def price_rows(self, bars: list[list[Any]], fmt: Callable[[list[Any]], Any], close_key: Any) -> list[Any]:
        """Corrupt (as configured), format, junk and order ascending bars; returns provider rows, ascending."""
        bars = corrupt_bars(bars, self.corruptions)
        rows = [fmt(bar) for bar in bars]
        if "junk_strings" in self.corruptions and rows:
            rows[0][close_key] = junk(rows[0][close_key])
        return rows

    def order(self, rows: list[Any]) -> list[Any]:
        return shuffle_rows(rows, self.config.seed) if "out_of_order" in self.corruptions else rows

    # -- Binance
    def binance_klines(self, query: Mapping[str, list[str]]) -> Response:
        weight = str(self.server._binance_weight())
        headers = {"x-mbx-used-weight": weight, "x-mbx-used-weight-1m": weight}

        def error(code: int, msg: str) -> Response:
            return Response(
                400, json_response({"code": code, "msg": msg}).body, "application/json;charset=UTF-8", headers
            )

        def illegal(name: str) -> Callable[[], Response]:
            return lambda: error(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
            )

        symbol, interval = _one(query, "symbol"), _one(query, "interval")
        for name, value in (("symbol", symbol), ("interval", interval)):
            if not value:
                return error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        known = {provider_symbol("binance", s): s for s in self.server._series}
        if symbol not in known:
            return error(-1121, "Invalid symbol.")
        if interval != "1h":  # the bundled data is hourly; other intervals are not replayed
            return error(-1120, "Invalid interval.")
        limit = _int_or(_one(query, "limit"), illegal("limit"))
        start_ms = _int_or(_one(query, "startTime"), illegal("startTime"))
        end_ms = _int_or(_one(query, "endTime"), illegal("endTime"))
        if limit is None:
            limit = BINANCE_DEFAULT_LIMIT
        if limit < 1:
            return error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(limit, BINANCE_MAX_LIMIT)
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            return error(-1023, "Start time is greater than end time.")

        series = self.server._series[known[symbol]]
        newest = _last_closed_open(self.clock_s)
        if start_ms is not None:
            lo = -(-start_ms // 1000)  # the first bar opening at or after startTime
            hi = lo + (limit - 1) * HOUR if end_ms is None else min(end_ms // 1000, lo + (limit - 1) * HOUR)
            self.check_down_days(lo, hi)
            bars = series.bars(lo, newest if end_ms is None else min(end_ms // 1000, newest), first=limit)
        else:  # the latest `limit` bars up to endTime (or now)
            hi = newest if end_ms is None else min(end_ms // 1000, newest)
            self.check_down_days(hi - (limit - 1) * HOUR, hi)
            bars = series.bars(-(2**62), hi, last=limit)

        def fmt(bar: list[Any]) -> list[Any]:
            t, o, h, low, c, v = bar
            open_ms = t * 1000
            return [open_ms, _money(o), _money(h), _money(low), _money(c), _money(v), open_ms + HOUR * 1000 - 1,
                    _money(v * c), 0, "0.00000000", "0.00000000", "0"]  # fmt: skip

        rows = self.order(self.price_rows(bars, fmt, 4))
        response = json_response(rows, 200, **headers)
        response.content_type = "application/json;charset=UTF-8"
        return response

    # -- Coinbase Exchange
    def coinbase_candles(self, product: str, query: Mapping[str, list[str]]) -> Response:
        known = {provider_symbol("coinbase", s): s for s in self.server._series}
        if product not in known:
            return json_response({"message": "NotFound"}, 404)
        granularity = _int_or(
            _one(query, "granularity"), lambda: json_response({"message": "Unsupported granularity"}, 400)
        )
        if granularity != HOUR:  # only hourly data is bundled (the real API also has 60 ... 86400)
            return json_response({"message": "Unsupported granularity"}, 400)
        start_raw, end_raw = _one(query, "start"), _one(query, "end")
        newest = _last_closed_open(self.clock_s)
        if start_raw and end_raw:  # as the real API: if either is missing, both are ignored
            try:
                start = _parse_time(start_raw)
            except ValueError:
                return json_response({"message": "Invalid start"}, 400)
            try:
                end = _parse_time(end_raw)
            except ValueError:
                return json_response({"message": "Invalid end"}, 400)
            if start > end:
                return json_response({"message": "start must be before end"}, 400)
            count = end // HOUR - (-(-start // HOUR)) + 1
            if count > COINBASE_MAX_CANDLES:
                return json_response(
                    {
                        "message": "granularity too small for the requested time range. "
                        "Count of aggregations requested exceeds 300"
                    },
                    400,
                )
        else:
            end = newest
            start = end - (COINBASE_MAX_CANDLES - 1) * HOUR
        self.check_down_days(start, end)
        bars = self.server._series[known[product]].bars(start, min(end, newest))

        def fmt(bar: list[Any]) -> list[Any]:
            t, o, h, low, c, v = bar
            return [t, low, h, o, c, v]

        rows = self.price_rows(bars, fmt, 4)
        rows.reverse()  # newest first
        return json_response(self.order(rows))

    # -- Kraken
    def kraken_ohlc(self, query: Mapping[str, list[str]]) -> Response:
        def invalid() -> Response:
            return json_response({"error": ["EGeneral:Invalid arguments"]})

        pair = _one(query, "pair")
        if not pair:
            return invalid()
        pairs = {}
        for symbol in self.server._series:
            name = provider_symbol("kraken", symbol)
            key = KRAKEN_RESULT_KEYS.get(name, name)
            pairs[name] = pairs[key] = (symbol, key)
        if pair not in pairs:
            return json_response({"error": ["EQuery:Unknown asset pair"]})
        symbol, key = pairs[pair]
        interval = _int_or(_one(query, "interval"), invalid) or 1
        since = _int_or(_one(query, "since"), invalid)
        if interval != 60:  # only hourly data is bundled (the real API also has 1 ... 21600 minutes)
            return invalid()
        series = self.server._series[symbol]
        # Every bar that has opened by the clock exists; the last one is still running (unless the bundled
        # data ends before the clock). Only the latest 720 exist at all.
        latest = series.last_open_at_or_before(self.clock_s)
        if latest is None:
            return json_response({"error": [], "result": {key: [], "last": 0}})
        window = series.bars(latest - (KRAKEN_WINDOW - 1) * HOUR, latest)
        unfinished = latest + HOUR > self.clock_s
        last = latest - HOUR if unfinished else latest
        lo = window[0][0] if since is None else max(window[0][0], since + 1)
        self.check_down_days(min(lo, latest), latest)
        # "since" is exclusive; the running bar is always sent, whatever "since" says.
        bars = [bar for bar in window if since is None or bar[0] > since]
        if not bars or bars[-1][0] != latest:
            bars.append(window[-1])

        def fmt(bar: list[Any]) -> list[Any]:
            t, o, h, low, c, v = bar
            vwap = round((h + low + c) / 3, 8)  # typical price: the bundled data has no VWAP
            return [t, _plain(o), _plain(h), _plain(low), _plain(c), _plain(vwap), _money(v), 0]

        rows = self.order(self.price_rows(bars, fmt, 4))
        return json_response({"error": [], "result": {key: rows, "last": last}})

    # -- CryptoCompare
    @staticmethod
    def cc_error(message: str, param: str | None = None) -> Response:
        payload: dict[str, Any] = {
            "Response": "Error",
            "Message": message,
            "HasWarning": False,
            "Type": 2,
            "RateLimit": {},
            "Data": {},
        }
        if param:
            payload["ParamWithError"] = param
        return json_response(payload)

    def cryptocompare_histohour(self, query: Mapping[str, list[str]]) -> Response:
        fsym, tsym = _one(query, "fsym"), _one(query, "tsym")
        for name, value in (("fsym", fsym), ("tsym", tsym)):
            if not value:
                return self.cc_error(f"{name} is a required param.", name)
        assert fsym is not None and tsym is not None
        if fsym.upper() not in self.server._series or tsym.upper() != "USD":
            return self.cc_error(
                f"cccagg_or_exchange market does not exist for this coin pair ({fsym.upper()}-{tsym.upper()})"
            )
        limit = _int_or(_one(query, "limit"), lambda: self.cc_error("limit param is not an integer.", "limit"))
        to_ts = _int_or(_one(query, "toTs"), lambda: self.cc_error("toTs param is not an integer.", "toTs"))
        limit = CRYPTOCOMPARE_DEFAULT_LIMIT if limit is None else max(1, min(limit, CRYPTOCOMPARE_MAX_LIMIT))
        newest = _last_closed_open(self.clock_s)
        time_to = newest if to_ts is None else min(_floor_hour(to_ts), newest)
        time_from = time_to - limit * HOUR
        self.check_down_days(time_from, time_to)
        bars = self.server._series[fsym.upper()].bars(time_from, time_to)

        def fmt(bar: list[Any]) -> dict[str, Any]:
            t, o, h, low, c, v = bar
            return {"time": t, "high": h, "low": low, "open": o, "volumefrom": v, "volumeto": round(v * c, 8),
                    "close": c, "conversionType": "direct", "conversionSymbol": ""}  # fmt: skip

        rows = self.order(self.price_rows(bars, fmt, "close"))
        return json_response(
            {
                "Response": "Success",
                "Message": "",
                "HasWarning": False,
                "Type": 100,
                "RateLimit": {},
                "Data": {"Aggregated": False, "TimeFrom": time_from, "TimeTo": time_to, "Data": rows},
            }
        )

    def cryptocompare_news(self, query: Mapping[str, list[str]]) -> Response:
        lang = (_one(query, "lang") or "EN").upper()
        lts = _int_or(_one(query, "lTs"), lambda: self.cc_error("lTs param is not an integer.", "lTs"))
        lts = self.clock_s if lts is None or lts <= 0 else min(lts, self.clock_s)
        news = self.server._news
        start = news.newest_at_or_before(lts)
        items = news.items[start : start + NEWS_PAGE_SIZE] if lang == "EN" else []
        return json_response(
            {
                "Type": 100,
                "Message": "News list successfully returned",
                "Promoted": [],
                "Data": items,
                "RateLimit": {},
                "HasWarning": False,
            }
        )

    # -- RSS
    def rss(self, name: str) -> Response:
        feed = next((f for f in FEEDS if f.name == name), None)
        if feed is None:
            return html_response(404, "404 Not Found", f"No feed named {escape(name)}.")
        news = self.server._news
        first = news.newest_at_or_before(self.clock_s)
        indexes = [i for i in news.feeds[name] if i >= first][:RSS_ITEMS]
        build = datetime.fromtimestamp(self.clock_s, UTC)
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
            "<channel>",
            f"<title>{escape(feed.title)}</title>",
            f"<link>{escape(feed.link)}</link>",
            f"<description>{escape(feed.title)} (replayed from bundled recorded data)</description>",
            "<language>en</language>",
            f"<lastBuildDate>{format_datetime(build)}</lastBuildDate>",
        ]
        for i in indexes:
            item = news.items[i]
            published = datetime.fromtimestamp(item["published_on"], UTC)
            parts.append("<item>")
            parts.append(f"<title>{escape(item['title'])}</title>")
            if item["url"]:
                parts.append(f"<link>{escape(rss_link(item['url']))}</link>")
            parts.append(f'<guid isPermaLink="false">{escape(item["guid"])}</guid>')
            parts.append(f"<pubDate>{format_datetime(published)}</pubDate>")
            parts.append(f"<description>{escape(item['body'])}</description>")
            parts.append("</item>")
        parts += ["</channel>", "</rss>", ""]
        return Response(200, "\n".join(parts).encode("utf-8"), "application/rss+xml; charset=utf-8")


def rss_link(url: str) -> str:
    """The article URL with the tracking suffix that real feeds add (unless it already has one)."""
    if "utm_source=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}{RSS_UTM}"


# ------------------------------------------------------------------------------------- http plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], replay: ReplayServer) -> None:
        self.replay = replay
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """End kept-alive connections too, so that a stopped server really stops answering."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crypto-assets-replay/1"
    timeout = 60  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms per request
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            response = self.server.replay.handle(method, self.path, body)
        except Exception as exc:  # a bug here must not kill the connection silently
            response = json_response({"error": f"replay server error: {type(exc).__name__}: {exc}"}, 500)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.replay.log_requests:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``crypto-assets replay-server`` options (also used by ``main``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--clock", help="replay clock, ISO 8601 (default 2022-08-02T00:00:00Z, the end of the data)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of provider requests that get a fault")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FaultConfig().kinds),
        help=f"comma-separated fault kinds from {','.join(FAULT_KINDS)} (default: all but slow)",
    )
    parser.add_argument("--slow-seconds", type=float, default=6.0, help="delay of the 'slow' fault (default 6)")
    parser.add_argument(
        "--down", default="", help=f"providers that answer 503 to everything, from {','.join(PROVIDERS)}"
    )
    parser.add_argument("--down-days", default="", help="UTC days (YYYY-MM-DD, comma-separated) with no price data")
    parser.add_argument(
        "--corrupt",
        action="append",
        default=[],
        metavar="PROVIDER:KIND[,KIND]",
        help=f"corrupt a provider's price bodies, kinds from {','.join(CORRUPTIONS)}; repeatable",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the deterministic fault stream")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    corrupt: dict[str, list[str]] = {}
    for spec in args.corrupt:
        provider, sep, kinds = spec.partition(":")
        if not sep or not kinds:
            raise ConfigError(f"--corrupt {spec!r}: expected PROVIDER:KIND[,KIND], e.g. binance:gap,duplicates")
        corrupt.setdefault(provider, []).extend(kinds.split(","))
    return FaultConfig(
        rate=args.fault_rate,
        kinds=[k for k in args.fault_kinds.split(",") if k],
        slow_seconds=args.slow_seconds,
        down=[p for p in args.down.split(",") if p],
        down_days=[d for d in args.down_days.split(",") if d],
        corrupt=corrupt,
        seed=args.seed,
    )


def serve(
    port: int = DEFAULT_PORT,
    *,
    host: str = "127.0.0.1",
    faults: FaultConfig | None = None,
    clock: datetime | str | None = None,
    log_requests: bool = False,
    stop_event: threading.Event | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the replay server until SIGINT/SIGTERM (or ``stop_event``), printing its URL and ``export`` lines."""
    out = out or sys.stdout
    stop = stop_event or threading.Event()
    server = ReplayServer(
        host, port, faults, parse_clock(clock) if clock is not None else None, log_requests=log_requests
    )
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port", file=sys.stderr)
        return 1
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        print(f"Replay server listening on {server.url} (clock {server.clock.isoformat()})", file=out)
        print("Point the pipeline at it with:", file=out)
        for name, value in server.env().items():
            print(f"export {name}={shlex.quote(value)}", file=out)
        print("Press Ctrl+C to stop.", file=out, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("Replay server stopped.", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None, *, stop_event: threading.Event | None = None) -> int:
    """``crypto-assets replay-server [--port P] [--fault-rate R] [--down binance,...] ...``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="crypto-assets replay-server",
        description="Serve the bundled recorded market data and news over HTTP in each provider's API format.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, stop_event=stop_event)


def run(args: argparse.Namespace, *, stop_event: threading.Event | None = None) -> int:
    """Run from parsed ``add_arguments`` options; a bad option prints the reason and returns 2."""
    try:
        faults = faults_from_args(args)
        clock = parse_clock(args.clock) if args.clock else None
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(
        args.port, host=args.host, faults=faults, clock=clock, log_requests=args.verbose, stop_event=stop_event
    )


__all__ = [
    "BUNDLED_SYMBOLS",
    "DEFAULT_CLOCK",
    "DEFAULT_PORT",
    "FEEDS",
    "ReplayServer",
    "add_arguments",
    "article_id",
    "main",
    "run",
    "serve",
]

if __name__ == "__main__":
    sys.exit(main())
