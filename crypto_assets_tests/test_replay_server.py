"""The replay server against the bundled data: formats, paging limits, faults, admin API and CLI.

Everything runs a real server on a free local port and talks to it with plain ``requests``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import feedparser
import pandas as pd
import pytest
import requests

from crypto_assets.config import REPO_ROOT, load_settings
from crypto_assets.errors import ConfigError
from crypto_assets.providers import registry
from crypto_assets.providers.rss import FEEDS, feed_members
from crypto_assets.replay import REPLAY_DIR, FaultConfig, ReplayServer, load_bundled_news, load_bundled_prices
from crypto_assets.replay.data import bundled_news_index
from crypto_assets.replay.faults import decide
from crypto_assets.replay.server import add_arguments, faults_from_args, main

BTC_FIRST_OPEN_MS = 1651622400000  # 2022-05-04 00:00 UTC
BTC_FIRST = (37728.95, 37943.66, 37670.0, 37902.06, 1198.37701)  # open, high, low, close, volume
H = 3600


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


@pytest.fixture(scope="module")
def server():
    with ReplayServer() as srv:
        yield srv


@pytest.fixture
def fresh():
    with ReplayServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


def klines(srv: ReplayServer, http: requests.Session, **params) -> requests.Response:
    return http.get(f"{srv.base_url('binance')}/api/v3/klines", params={"interval": "1h", **params}, timeout=10)


def candles(srv: ReplayServer, http: requests.Session, product: str = "BTC-USD", **params) -> requests.Response:
    url = f"{srv.base_url('coinbase')}/products/{product}/candles"
    return http.get(url, params={"granularity": 3600, **params}, timeout=10)


def ohlc(srv: ReplayServer, http: requests.Session, **params) -> requests.Response:
    return http.get(f"{srv.base_url('kraken')}/0/public/OHLC", params={"interval": 60, **params}, timeout=10)


def histohour(srv: ReplayServer, http: requests.Session, **params) -> requests.Response:
    url = f"{srv.base_url('cryptocompare')}/data/v2/histohour"
    return http.get(url, params={"tsym": "USD", **params}, timeout=10)


# ------------------------------------------------------------------------------------ bundled data


def test_bundled_files_are_the_documented_unchanged_copies():
    readme = (REPLAY_DIR / "README.md").read_text()
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    assert len(sums) == 7
    for digest, name in sums:
        with gzip.open(REPLAY_DIR / f"{name}.gz", "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == digest, name
    assert REPLAY_DIR == REPO_ROOT / "data" / "replay"


def test_load_bundled_prices_and_news():
    prices = load_bundled_prices()
    assert list(prices.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert str(prices["ts"].dtype) == "datetime64[ns, UTC]"
    assert prices.groupby("symbol").size().to_dict() == dict.fromkeys(["ADA", "BNB", "BTC", "ETH", "SOL", "XRP"], 2160)
    btc = prices[prices.symbol == "BTC"]
    assert (btc["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
    first = btc.iloc[0]
    assert first["ts"] == pd.Timestamp("2022-05-04T00:00Z")
    assert tuple(first[["open", "high", "low", "close", "volume"]]) == BTC_FIRST
    prices.loc[:, "close"] = 0.0  # callers get copies
    assert load_bundled_prices()["close"].iloc[0] != 0.0

    news = load_bundled_news()
    assert list(news.columns) == ["published_at", "source", "title", "body", "url", "dataset"]
    assert len(news) == 3907 and str(news["published_at"].dtype) == "datetime64[ns, UTC]"
    assert news["published_at"].is_monotonic_increasing
    assert (news.loc[news.source == "Reuters", "url"] == "").all()
    assert news["body"].str.contains(r"\x93", regex=False).any()  # the documented mojibake survives


# ------------------------------------------------------------------------------------------ routes


def test_binance_klines_format_and_values(server, http):
    r = klines(server, http, symbol="BTCUSDT", startTime=BTC_FIRST_OPEN_MS, limit=2)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert int(r.headers["x-mbx-used-weight-1m"]) >= 2
    rows = r.json()
    assert len(rows) == 2 and all(len(row) == 12 for row in rows)
    first = rows[0]
    assert first[0] == BTC_FIRST_OPEN_MS and first[6] == BTC_FIRST_OPEN_MS + 3599999
    assert first[1:6] == ["37728.95000000", "37943.66000000", "37670.00000000", "37902.06000000", "1198.37701000"]
    assert float(first[7]) == pytest.approx(1198.37701 * 37902.06)
    assert rows[1][0] == BTC_FIRST_OPEN_MS + H * 1000


def test_binance_paging_limits(server, http):
    default = klines(server, http, symbol="ETHUSDT").json()
    assert len(default) == 500 and default[-1][0] == ts("2022-08-01T23:00Z") * 1000  # latest closed bars
    capped = klines(server, http, symbol="ETHUSDT", startTime=BTC_FIRST_OPEN_MS, limit=5000).json()
    assert len(capped) == 1000
    day = klines(
        server,
        http,
        symbol="SOLUSDT",
        startTime=ts("2022-06-13T00:00Z") * 1000,
        endTime=ts("2022-06-13T23:59:59Z") * 1000,
    ).json()
    assert [row[0] // 1000 for row in day] == [ts("2022-06-13T00:00Z") + i * H for i in range(24)]
    before_end = klines(server, http, symbol="SOLUSDT", endTime=ts("2022-06-13T00:00Z") * 1000, limit=3).json()
    assert [row[0] // 1000 for row in before_end] == [
        ts("2022-06-12T22:00Z"),
        ts("2022-06-12T23:00Z"),
        ts("2022-06-13T00:00Z"),
    ]

    opens, start = [], BTC_FIRST_OPEN_MS
    while batch := klines(server, http, symbol="BTCUSDT", startTime=start, limit=1000).json():
        opens += [row[0] for row in batch]
        start = batch[-1][0] + 1
    assert len(opens) == len(set(opens)) == 2160


def test_binance_errors(server, http):
    r = klines(server, http, symbol="XYZUSDT")
    assert r.status_code == 400 and r.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert klines(server, http, symbol="BTCUSDT", interval="1d").json()["code"] == -1120
    assert http.get(f"{server.base_url('binance')}/api/v3/klines", params={"interval": "1h"}).json()["code"] == -1102
    r = klines(server, http, symbol="BTCUSDT", startTime=2, endTime=1)
    assert r.status_code == 400 and r.json()["code"] == -1023


def test_coinbase_candles(server, http):
    r = candles(server, http, start="2022-05-04T00:00:00Z", end="2022-05-04T23:00:00Z")
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 24 and [row[0] for row in rows] == sorted((row[0] for row in rows), reverse=True)
    o, h, low, c, v = BTC_FIRST
    assert rows[-1] == [BTC_FIRST_OPEN_MS // 1000, low, h, o, c, v]  # [time, low, high, open, close, volume]

    start = ts("2022-06-01T00:00Z")
    ok = candles(server, http, start=start, end=start + 299 * H)  # epoch seconds work too
    assert ok.status_code == 200 and len(ok.json()) == 300
    too_many = candles(server, http, start="2022-06-01T00:00:00Z", end="2022-06-13T12:00:00Z")
    assert too_many.status_code == 400
    assert too_many.json()["message"] == (
        "granularity too small for the requested time range. Count of aggregations requested exceeds 300"
    )
    latest = candles(server, http).json()  # no range: the latest 300
    assert len(latest) == 300 and latest[0][0] == ts("2022-08-01T23:00Z")

    r = candles(server, http, product="XYZ-USD")
    assert r.status_code == 404 and r.json() == {"message": "NotFound"}


def test_kraken_window_and_unfinished_last_row(fresh, http):
    fresh.set_clock(datetime(2022, 7, 1, 12, 30, tzinfo=UTC))
    body = ohlc(fresh, http, pair="XBTUSD").json()
    assert body["error"] == [] and set(body["result"]) == {"XXBTZUSD", "last"}
    rows = body["result"]["XXBTZUSD"]
    assert len(rows) == 720
    assert rows[-1][0] == ts("2022-07-01T12:00Z")  # the running bar that contains the clock
    assert rows[0][0] == ts("2022-07-01T12:00Z") - 719 * H
    assert body["result"]["last"] == ts("2022-07-01T11:00Z")
    row = rows[-1]
    assert all(isinstance(x, str) for x in row[1:7]) and row[7] == 0
    h, low, c = float(row[2]), float(row[3]), float(row[4])
    assert float(row[5]) == pytest.approx((h + low + c) / 3)

    since = ohlc(fresh, http, pair="XBTUSD", since=ts("2022-07-01T09:00Z")).json()["result"]["XXBTZUSD"]
    assert [r[0] for r in since] == [ts("2022-07-01T10:00Z"), ts("2022-07-01T11:00Z"), ts("2022-07-01T12:00Z")]
    later = ohlc(fresh, http, pair="XBTUSD", since=ts("2022-07-02T00:00Z")).json()["result"]["XXBTZUSD"]
    assert [r[0] for r in later] == [ts("2022-07-01T12:00Z")]  # the running bar is always sent
    old = ohlc(fresh, http, pair="XBTUSD", since=ts("2022-05-04T00:00Z")).json()["result"]["XXBTZUSD"]
    assert len(old) == 720  # older data cannot be retrieved

    assert set(ohlc(fresh, http, pair="ETHUSD").json()["result"]) == {"XETHZUSD", "last"}
    assert set(ohlc(fresh, http, pair="SOLUSD").json()["result"]) == {"SOLUSD", "last"}
    assert ohlc(fresh, http, pair="XYZUSD").json() == {"error": ["EQuery:Unknown asset pair"]}

    fresh.set_clock(datetime(2022, 8, 2, tzinfo=UTC))  # past the data: the last row is the last bundled bar
    result = ohlc(fresh, http, pair="ADAUSD").json()["result"]
    assert result["ADAUSD"][-1][0] == result["last"] == ts("2022-08-01T23:00Z")


def test_cryptocompare_histohour(server, http):
    to_ts = ts("2022-05-04T10:00Z")
    body = histohour(server, http, fsym="BTC", limit=10, toTs=to_ts).json()
    assert body["Response"] == "Success"
    data = body["Data"]
    assert data["TimeTo"] == to_ts and data["TimeFrom"] == to_ts - 10 * H
    rows = data["Data"]
    assert [r["time"] for r in rows] == [to_ts - (10 - i) * H for i in range(11)]  # limit + 1 rows
    o, h, low, c, v = BTC_FIRST
    assert rows[0] | {"volumeto": None} == {
        "time": BTC_FIRST_OPEN_MS // 1000, "open": o, "high": h, "low": low, "close": c,
        "volumefrom": v, "volumeto": None, "conversionType": "direct", "conversionSymbol": "",
    }  # fmt: skip
    assert rows[0]["volumeto"] == pytest.approx(v * c)
    capped = histohour(server, http, fsym="ETH", limit=5000).json()["Data"]["Data"]
    assert len(capped) == 2001 and capped[-1]["time"] == ts("2022-08-01T23:00Z")

    r = histohour(server, http, fsym="XYZ")
    assert r.status_code == 200
    err = r.json()
    assert err["Response"] == "Error" and err["Type"] == 2 and err["Data"] == {}
    assert err["Message"] == "cccagg_or_exchange market does not exist for this coin pair (XYZ-USD)"


def test_cryptocompare_news_paging_reaches_every_item(server, http):
    url = f"{server.base_url('cryptocompare')}/data/v2/news/"
    first = http.get(url, params={"lang": "EN"}).json()
    assert first["Type"] == 100 and first["Message"] == "News list successfully returned"
    item = first["Data"][0]
    assert {"id", "guid", "published_on", "title", "url", "body", "source", "tags", "categories", "lang"} <= set(item)
    assert item["categories"] == "" and item["lang"] == "EN" and item["source_info"]["name"] == item["source"]

    ids: set[str] = set()
    lts, pages = None, 0
    while True:
        params = {"lang": "EN"} | ({"lTs": lts} if lts is not None else {})
        data = http.get(url, params=params).json()["Data"]
        pages += 1
        assert len(data) <= 50
        stamps = [d["published_on"] for d in data]
        assert stamps == sorted(stamps, reverse=True)
        if lts is not None:
            assert all(s <= lts for s in stamps)
        new = {d["id"] for d in data} - ids
        if not new:
            break
        ids |= new
        lts = stamps[-1]  # inclusive: items sharing the oldest second come again and are de-duplicated
    assert len(ids) == 3907 and pages > 3907 // 50


def test_rss_feeds_parse_with_rfc822_dates(fresh, http):
    clock = datetime(2022, 6, 15, tzinfo=UTC)
    fresh.set_clock(clock)
    for feed in FEEDS:
        r = http.get(f"{fresh.url}/rss/{feed.name}.xml", timeout=10)
        assert r.status_code == 200 and "xml" in r.headers["Content-Type"]
        parsed = feedparser.parse(r.content)
        assert not parsed.bozo, feed.name
        available = sum(item["published_on"] <= clock.timestamp() for item in feed_items(feed.name))
        assert len(parsed.entries) == min(20, available) > 0
        stamps = [time.mktime(e.published_parsed) - time.mktime(time.gmtime(0)) for e in parsed.entries]
        assert stamps == sorted(stamps, reverse=True) and stamps[0] <= clock.timestamp()
        for entry in parsed.entries:
            assert entry.title and entry.summary
            assert entry.link.endswith("utm_source=rss&utm_medium=rss") or "utm_source=" in entry.link
    raw = http.get(f"{fresh.url}/rss/cointelegraph.xml").text
    dates = re.findall(r"<pubDate>(.*?)</pubDate>", raw)
    assert dates and all(
        re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000", d) for d in dates
    )
    assert http.get(f"{fresh.url}/rss/nope.xml").status_code == 404
    assert set(fresh.env()["CRYPTO_ASSETS_RSS_FEEDS"].split(",")) == {f"{fresh.url}/rss/{f.name}.xml" for f in FEEDS}


def feed_items(name: str) -> list[dict]:
    news = bundled_news_index()
    return [news.items[i] for i in feed_members(news)[name]]


def test_env_points_every_provider_at_the_server(server):
    """Every registered provider is replayed, and the server's env points each one's client at it."""
    env = server.env()
    settings = load_settings(env)
    for spec in registry.all_providers():
        assert spec.replay is not None, f"{spec.name} has no replay format"
        if spec.url_env:
            assert env[spec.url_env] == f"{server.url}/{spec.name}"
            assert settings.provider_urls[spec.name] == f"{server.url}/{spec.name}"
    assert len(settings.provider_options["rss"]["feeds"]) == len(FEEDS)
    assert not settings.rate_limits and load_settings({}).rate_limits


def test_resources_build_clients_without_rate_limits_for_the_replay_server(server, monkeypatch):
    """The replay server's env turns the limiters off in every client the resources build; live keeps them."""
    from crypto_assets.defs.resources import build_resources
    from crypto_assets.http import rate_limiter

    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRYPTO_ASSETS_PRICE_PROVIDERS", "binance,coinbase,cryptocompare")
    monkeypatch.setenv("CRYPTO_ASSETS_NEWS_PROVIDERS", "cryptocompare,rss")
    monkeypatch.setenv("CRYPTOCOMPARE_API_KEY", "test-key-1234")
    for rate_limited in (False, True):
        monkeypatch.setenv("CRYPTO_ASSETS_RATE_LIMITS", "on" if rate_limited else "off")
        resources = build_resources()
        clients = [*resources["price_sources"].clients(), *resources["news_sources"].clients()]
        assert [c.name for c in clients] == ["binance", "coinbase", "cryptocompare", "cryptocompare", "rss"]
        for c in clients:
            shared = c.http.limiter is rate_limiter(c.name, registry.provider(c.name).rate_limit.per_second)
            assert shared == rate_limited, c


def test_clock_hides_bars_that_have_not_closed(fresh, http):
    fresh.set_clock(datetime(2022, 6, 1, 10, 30, tzinfo=UTC))
    rows = klines(fresh, http, symbol="BTCUSDT", startTime=ts("2022-06-01T00:00Z") * 1000).json()
    assert rows[-1][0] // 1000 == ts("2022-06-01T09:00Z")  # closes 10:00; the 10:00 bar is still running
    assert candles(fresh, http).json()[0][0] == ts("2022-06-01T09:00Z")
    assert histohour(fresh, http, fsym="BTC", limit=1).json()["Data"]["TimeTo"] == ts("2022-06-01T09:00Z")


# ------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize("kind", ["429", "5xx", "truncated", "html"])
def test_fault_kind_is_served_at_the_configured_rate(fresh, http, kind):
    clean_length = len(klines(fresh, http, symbol="BTCUSDT", limit=3).content)
    config = FaultConfig(rate=0.25, kinds=[kind], seed=7)
    fresh.set_faults(config)
    n = 120
    faulted = 0
    for _ in range(n):
        r = klines(fresh, http, symbol="BTCUSDT", limit=3)
        if r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"):
            try:
                r.json()
                continue
            except ValueError:
                assert kind == "truncated"
                assert len(r.content) == clean_length // 2
        faulted += 1
        if kind == "429":
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        elif kind == "5xx":
            assert 500 <= r.status_code < 600
        elif kind == "html":
            assert r.status_code in (200, 502) and r.headers["Content-Type"].startswith("text/html")
    expected = sum(decide(config, i, "binance") is not None for i in range(n))
    assert faulted == expected == fresh.fault_stats()[kind]
    assert 0.12 * n <= faulted <= 0.38 * n


def test_slow_fault_delays_the_answer(fresh, http):
    fresh.set_faults(FaultConfig(rate=1.0, kinds=["slow"], slow_seconds=0.4))
    started = time.monotonic()
    r = candles(fresh, http)
    assert time.monotonic() - started >= 0.4
    assert r.status_code == 200 and len(r.json()) == 300


def test_fault_stream_is_deterministic_per_seed(fresh, http):
    def statuses() -> list[int]:
        fresh.set_faults(FaultConfig(rate=0.5, kinds=["429", "5xx"], seed=3))
        return [histohour(fresh, http, fsym="BTC", limit=1).status_code for _ in range(30)]

    first = statuses()
    assert first == statuses() and len(set(first)) > 1


def test_down_providers_answer_503(fresh, http):
    fresh.set_faults(FaultConfig(down=["binance", "rss"]))
    assert klines(fresh, http, symbol="BTCUSDT").status_code == 503
    assert http.get(f"{fresh.url}/binance/anything").status_code == 503
    assert http.get(f"{fresh.url}/rss/coindesk.xml").status_code == 503
    assert candles(fresh, http).status_code == 200


def test_down_days_fail_price_requests_that_touch_them(fresh, http):
    fresh.set_faults(FaultConfig(down_days=["2022-06-13"]))
    day = ts("2022-06-13T00:00Z")
    assert klines(fresh, http, symbol="BTCUSDT", startTime=day * 1000, endTime=(day + 86399) * 1000).status_code == 503
    assert klines(fresh, http, symbol="BTCUSDT", startTime=(day + 86400) * 1000, limit=24).status_code == 200
    assert klines(fresh, http, symbol="BTCUSDT", startTime=(day - 86400) * 1000, limit=24).status_code == 200
    assert candles(fresh, http, start=day - 5 * H, end=day + 5 * H).status_code == 503
    assert histohour(fresh, http, fsym="ETH", toTs=day + 12 * H, limit=5).status_code == 503
    assert histohour(fresh, http, fsym="ETH", toTs=day - H, limit=5).status_code == 200
    fresh.set_clock(datetime(2022, 6, 20, tzinfo=UTC))
    assert ohlc(fresh, http, pair="XBTUSD").status_code == 503  # Kraken's 720-bar window covers the day
    assert http.get(f"{fresh.base_url('cryptocompare')}/data/v2/news/").status_code == 200


def test_price_corruptions(fresh, http):
    day = {"startTime": ts("2022-06-13T00:00Z") * 1000, "endTime": ts("2022-06-14T23:59Z") * 1000}

    def rows(corruption: str) -> list[list]:
        fresh.set_faults(FaultConfig(corrupt={"binance": [corruption]}))
        return klines(fresh, http, symbol="BTCUSDT", **day).json()

    fresh.set_faults(None)
    clean = klines(fresh, http, symbol="BTCUSDT", **day).json()
    assert len(clean) == 48

    dup = rows("duplicates")
    assert len(dup) == 50 and len({r[0] for r in dup}) == 48
    shuffled = rows("out_of_order")
    assert shuffled != clean and sorted(shuffled) == clean
    gap = rows("gap")
    assert len(gap) == 46 and all((r[0] // 1000 // H) % 24 != 13 for r in gap)
    bad = rows("high_lt_low")
    assert sum(float(r[2]) < float(r[3]) for r in bad) == 1
    junk = rows("junk_strings")
    broken = [r for r in junk if not re.fullmatch(r"[0-9.]+", r[4])]
    assert len(broken) == 1 and broken[0][4].endswith("abc")

    fresh.set_faults(FaultConfig(corrupt={"coinbase": ["junk_strings"], "cryptocompare": ["out_of_order"]}))
    assert any(isinstance(r[4], str) for r in candles(fresh, http).json())
    times = [r["time"] for r in histohour(fresh, http, fsym="BTC", limit=30).json()["Data"]["Data"]]
    assert times != sorted(times) and len(times) == 31
    assert klines(fresh, http, symbol="BTCUSDT", **day).json() == clean  # other providers stay clean


def test_fault_config_validation_and_json():
    config = FaultConfig(rate=0.1, kinds=["429", "slow"], down=["kraken"], down_days=["2022-05-10"], seed=4,
                         corrupt={"binance": ["gap"]})  # fmt: skip
    assert FaultConfig.from_json(config.to_json()) == config
    for bad in ({"rate": 2}, {"kinds": ["boom"]}, {"down": ["ftx"]}, {"down_days": ["May 10"]},
                {"corrupt": {"rss": ["gap"]}}, {"nope": 1}):  # fmt: skip
        with pytest.raises(ConfigError):
            FaultConfig.from_dict(bad)


# ------------------------------------------------------------------------------------- admin + CLI


def test_admin_endpoints(fresh, http):
    assert http.get(f"{fresh.url}/_health").json()["status"] == "ok"
    klines(fresh, http, symbol="BTCUSDT", limit=1)
    klines(fresh, http, symbol="NOPEUSDT")
    candles(fresh, http)
    http.get(f"{fresh.url}/rss/decrypt.xml")
    stats = http.get(f"{fresh.url}/_stats").json()
    assert stats == fresh.stats()
    assert set(stats) == {spec.name for spec in registry.all_providers()}
    assert {name: count for name, count in stats.items() if count} == {"binance": 2, "coinbase": 1, "rss": 1}

    r = http.post(f"{fresh.url}/_faults", json={"down": ["coinbase"]})
    assert r.status_code == 200 and fresh.faults.down == ["coinbase"]
    assert candles(fresh, http).status_code == 503
    assert http.post(f"{fresh.url}/_faults", json={"rate": 5}).status_code == 400
    assert fresh.faults.down == ["coinbase"]  # a rejected config leaves the current one

    r = http.post(f"{fresh.url}/_clock", json={"now": "2022-07-01T00:00:00Z"})
    assert r.status_code == 200 and fresh.clock == datetime(2022, 7, 1, tzinfo=UTC)
    assert histohour(fresh, http, fsym="BTC", limit=1).json()["Data"]["TimeTo"] == ts("2022-06-30T23:00Z")
    assert http.post(f"{fresh.url}/_clock", json={"now": "yesterday"}).status_code == 400


def test_stop_really_stops(http):
    srv = ReplayServer().start()
    url = srv.url
    assert http.get(f"{url}/_health").status_code == 200  # leaves a kept-alive connection in the pool
    srv.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/_health", timeout=2)


def test_main_rejects_bad_options(capsys):
    assert main(["--corrupt", "binance"]) == 2
    assert main(["--down", "ftx"]) == 2
    assert "error:" in capsys.readouterr().err


def test_corrupt_option_names_a_provider_or_one_of_its_symbols(capsys):
    """``--corrupt okx:ETH:nan_close`` (as data/replay/README.md shows it) corrupts OKX's ETH answers only."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--corrupt", "okx:ETH:nan_close", "--corrupt", "binance:gap,duplicates"])
    config = faults_from_args(args)
    assert config.corrupt == {"okx:ETH": ["nan_close"], "binance": ["gap", "duplicates"]}
    assert config.corruptions("okx", "ETH") == ["nan_close"] and config.corruptions("okx", "BTC") == []
    stop = threading.Event()
    stop.set()
    assert main(["--port", "0", "--corrupt", "okx:ETH:nan_close"], stop_event=stop) == 0
    assert "error:" not in capsys.readouterr().err


def test_main_serves_until_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "crypto_assets.replay.server", "--port", "0", "--down", "kraken", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)
        exports = [proc.stdout.readline() for _ in range(6)]
        assert f"export CRYPTO_ASSETS_BINANCE_URL={url}/binance\n" in exports
        assert requests.get(f"{url}/_health", timeout=5).json()["status"] == "ok"
        assert requests.get(f"{url}/kraken/0/public/OHLC?pair=XBTUSD&interval=60", timeout=5).status_code == 503
        assert requests.get(f"{url}/_stats", timeout=5).json()["kraken"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_aliases_serve_a_bundled_symbols_bars_under_another_name():
    """Benchmark-only option: every price provider serves BTC's bars under ZZ01 too, through the real clients."""
    from crypto_assets.providers.registry import ClientConfig

    start, end = datetime(2022, 6, 1, tzinfo=UTC), datetime(2022, 6, 3, tzinfo=UTC)
    with ReplayServer(aliases={"ZZ01": "BTC"}) as srv:
        for spec in registry.providers_of("prices"):
            provider = spec.name
            client = spec.client("prices", ClientConfig(srv.base_url(provider), api_key="replay-key"))
            alias = client.fetch_hourly("ZZ01", start, end, now=srv.clock)
            real = client.fetch_hourly("BTC", start, end, now=srv.clock)
            if provider == "kraken":  # only the latest 720 hours exist at Kraken
                assert alias.empty and real.empty
                alias = client.fetch_hourly("ZZ01", datetime(2022, 7, 30, tzinfo=UTC), srv.clock, now=srv.clock)
                real = client.fetch_hourly("BTC", datetime(2022, 7, 30, tzinfo=UTC), srv.clock, now=srv.clock)
            assert len(alias) > 0 and set(alias["symbol"]) == {"ZZ01"}, provider
            pd.testing.assert_frame_equal(alias.drop(columns="symbol"), real.drop(columns="symbol"))
    with ReplayServer() as plain, requests.Session() as session:
        assert klines(plain, session, symbol="ZZ01USDT").json()["code"] == -1121  # unknown without the alias
    for aliases, message in (
        ({"BTC": "ETH"}, "hide the bundled"),
        ({"ZZ01": "DOGE"}, "not a bundled"),
        ({"z": "BTC"}, "malformed"),
    ):
        with pytest.raises(ConfigError, match=message):
            ReplayServer(aliases=aliases)
