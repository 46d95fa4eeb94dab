"""What the price-provider tests share: a client wired to a local HTTP server and a fake clock, the requests that
server saw, the bundled bars a client must return, and OKX's and Bitstamp's wire formats served over the bundled
bars (each provider's documented paging), for the tests that run the same case against both.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable
from typing import Any

import pandas as pd
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from crypto_assets.http import HttpClient
from crypto_assets.providers import bitstamp, okx
from crypto_assets.providers.prices import PRICE_COLUMNS
from crypto_assets.replay.data import bundled_series, load_bundled_prices
from crypto_assets.replay.wire import money, plain
from crypto_assets_tests.fakes import FakeTime
from crypto_assets_tests.fixtures_util import provider_fixture

BITSTAMP_OHLC_RE = re.compile(r"^/api/v2/ohlc/[^/]+/$")

Mutate = Callable[[list[Any]], list[Any]]


def make(cls, server: HTTPServer, fake: FakeTime, api_key: str | None = None, **http_options):
    """A ``cls`` client for ``server`` whose HTTP session runs on the fake clock (no rate limit to speak of)."""
    options = {"rate_per_second": 1000.0, "sleep": fake.sleep, "clock": fake.clock, "rng": random.Random(1)}
    options.update(http_options)
    http = HttpClient(cls.name, server.url_for("/"), **options)
    return cls(server.url_for("/"), http=http, api_key=api_key)


def seen(server: HTTPServer, prefix: str = "/") -> list[Request]:
    """The requests ``server`` answered whose path starts with ``prefix``, in order."""
    return [request for request, _ in server.log if request.path.startswith(prefix)]


def bundled(symbol: str, start: dt.datetime, end: dt.datetime, provider: str) -> pd.DataFrame:
    """The bundled bars of ``symbol`` in [start, end) as ``provider``'s client returns them."""
    prices = load_bundled_prices()
    frame = prices[(prices["symbol"] == symbol) & (prices["ts"] >= start) & (prices["ts"] < end)].copy()
    frame["provider"] = provider
    return frame[list(PRICE_COLUMNS)].reset_index(drop=True)


# ------------------------------------------------------------------------------------ OKX's wire format


def okx_row(bar: list, confirm: str = "1") -> list[str]:
    t, o, h, low, c, v = bar
    return [str(t * 1000), plain(o), plain(h), plain(low), plain(c), plain(v), plain(v * c), plain(v * c), confirm]


def serve_okx(server: HTTPServer, symbol: str = "BTC", mutate: Mutate | None = None) -> None:
    """OKX's documented paging over the bundled bars: newest first, ts in (before, after), at most ``limit``."""
    series = bundled_series()[symbol]

    def handle(request: Request) -> Response:
        if request.args["instId"] != f"{symbol}-USDT":
            body = provider_fixture("okx", "error_51001_unknown-instrument.json", raw=True)
            return Response(body, content_type="application/json")
        assert request.args["bar"] == "1H"
        after, before, limit = (int(request.args[k]) for k in ("after", "before", "limit"))
        rows = [okx_row(b) for b in series.bars(before // 1000, after // 1000) if before < b[0] * 1000 < after]
        rows = rows[-min(limit, okx.MAX_LIMIT) :][::-1]
        body = {"code": "0", "msg": "", "data": mutate(rows) if mutate else rows}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request(okx.HISTORY_CANDLES_PATH).respond_with_handler(handle)


# ------------------------------------------------------------------------------------ Bitstamp's wire format


def bitstamp_row(bar: list) -> dict[str, str]:
    t, o, h, low, c, v = bar
    return {"timestamp": str(t), "open": plain(o), "high": plain(h), "low": plain(low), "close": plain(c),
            "volume": money(v)}  # fmt: skip


def serve_bitstamp(server: HTTPServer, mutate: Mutate | None = None) -> None:
    """Bitstamp's documented semantics over the bundled BTC bars: with start and end, ``limit`` rows ending at end."""
    series = bundled_series()["BTC"]

    def handle(request: Request) -> Response:
        if request.path != bitstamp.ohlc_path("btcusd"):
            return Response("<html><body><h1>Not Found</h1></body></html>", status=404, content_type="text/html")
        assert request.args["step"] == "3600"
        limit, end = int(request.args["limit"]), int(request.args["end"])
        rows = [bitstamp_row(b) for b in series.bars(-(2**62), end, last=min(limit, bitstamp.MAX_LIMIT))]
        body = {"data": {"pair": "BTC/USD", "ohlc": mutate(rows) if mutate else rows}}
        return Response(json.dumps(body), content_type="application/json")

    server.expect_request(BITSTAMP_OHLC_RE).respond_with_handler(handle)
