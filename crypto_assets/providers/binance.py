"""Binance spot klines: ``GET /api/v3/klines`` (1000 rows per request, times in ms, endTime inclusive).

Keyless. ``api.binance.com`` answers HTTP 451 from restricted locations (the US among them); the
market-data-only host ``data-api.binance.vision`` serves the same public endpoints and is the default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import HttpStatusError
from crypto_assets.providers.prices import (
    HOUR,
    Bar,
    BasePriceClient,
    bad_body,
    excerpt,
    expect_list,
    parse_number,
    parse_time,
)
from crypto_assets.providers.registry import PRICES, ProviderSpec, RateLimit, SymbolMap
from crypto_assets.replay.wire import (
    ReplayRequest,
    ReplayRoutes,
    Response,
    json_response,
    last_closed_open,
    money,
)

KLINES_PATH = "/api/v3/klines"
MAX_LIMIT, DEFAULT_LIMIT = 1000, 500
KLINES_WEIGHT = 2
INVALID_SYMBOL_CODE = -1121
WEIGHT_HEADER = "x-mbx-used-weight-1m"
RESTRICTED_MESSAGE = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you received this "
    "message in error."
)


class BinanceClient(BasePriceClient):
    name = "binance"
    symbols = SymbolMap("{sym}USDT")
    limit = MAX_LIMIT
    # 6000 request weight per minute per IP; stop well before the ban threshold.
    weight_budget = 4800

    @classmethod
    def _http_options(cls, rate_limited: bool) -> dict[str, Any]:
        return {
            **super()._http_options(rate_limited),
            "weight_header": WEIGHT_HEADER,
            "weight_budget": cls.weight_budget,
        }

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        pair = self.pair(symbol)
        bars: list[Bar] = []
        cursor = start_s * 1000
        stop_ms = stop_s * 1000
        while cursor < stop_ms:
            params = {
                "symbol": pair,
                "interval": "1h",
                "startTime": cursor,
                "endTime": stop_ms - 1,
                "limit": self.limit,
            }
            page: list[Bar] = self._get_parsed(KLINES_PATH, params, self._parse, pair=pair)
            bars.extend(page)
            if len(page) < self.limit:
                break
            following = (page[-1][0] + HOUR) * 1000
            if following <= cursor:
                break
            cursor = following
        return bars

    def _status_error(self, exc: HttpStatusError, pair: str) -> ProviderError | None:
        body = exc.json_body()
        if not (isinstance(body, dict) and body.get("code") == INVALID_SYMBOL_CODE):
            return None
        return UnknownSymbolError(self.name, exc.url, f"unknown symbol {pair}: {body.get('msg')} (HTTP {exc.status})")

    def _parse(self, body: Any) -> list[Bar]:
        rows = expect_list(self.name, body, "klines")
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) < 6:
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row[0], index=index, row=row, divisor=1000)
            o, h, lo, c, v = (
                parse_number(self.name, row[i], field_name=f, index=index, row=row)
                for i, f in ((1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume"))
            )
            bars.append((t, o, h, lo, c, v))
        bars.sort(key=lambda bar: bar[0])
        return bars


class BinanceReplay(ReplayRoutes):
    """``/api/v3/klines`` as documented: default limit 500, at most 1000, weight headers, -11xx error codes."""

    def route(self, request: ReplayRequest) -> Response:
        if request.path != KLINES_PATH:
            return self.not_found()
        weight = str(self._used_weight(request))
        headers = {"x-mbx-used-weight": weight, WEIGHT_HEADER: weight}

        def error(code: int, msg: str) -> Response:
            response = json_response({"code": code, "msg": msg}, 400, **headers)
            response.content_type = "application/json;charset=UTF-8"
            return response

        def illegal(name: str) -> Callable[[], Response]:
            return lambda: error(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
            )

        pair, interval = request.one("symbol"), request.one("interval")
        for name, value in (("symbol", pair), ("interval", interval)):
            if not value:
                return error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        assert pair is not None
        symbol = request.symbol_for(PROVIDER, pair)
        if symbol is None:
            return error(INVALID_SYMBOL_CODE, "Invalid symbol.")
        if interval != "1h":  # the bundled data is hourly; other intervals are not replayed
            return error(-1120, "Invalid interval.")
        limit = request.integer("limit", illegal("limit"))
        start_ms = request.integer("startTime", illegal("startTime"))
        end_ms = request.integer("endTime", illegal("endTime"))
        if limit is None:
            limit = DEFAULT_LIMIT
        if limit < 1:
            return error(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(limit, MAX_LIMIT)
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            return error(-1023, "Start time is greater than end time.")

        series = request.series(symbol)
        newest = last_closed_open(request.clock_s)
        if start_ms is not None:
            lo = -(-start_ms // 1000)  # the first bar opening at or after startTime
            hi = lo + (limit - 1) * HOUR if end_ms is None else min(end_ms // 1000, lo + (limit - 1) * HOUR)
            request.check_down_days(lo, hi)
            bars = series.bars(lo, newest if end_ms is None else min(end_ms // 1000, newest), first=limit)
        else:  # the latest `limit` bars up to endTime (or now)
            hi = newest if end_ms is None else min(end_ms // 1000, newest)
            request.check_down_days(hi - (limit - 1) * HOUR, hi)
            bars = series.bars(-(2**62), hi, last=limit)

        def fmt(bar: list[Any]) -> list[Any]:
            t, o, h, low, c, v = bar
            open_ms = t * 1000
            return [open_ms, money(o), money(h), money(low), money(c), money(v), open_ms + HOUR * 1000 - 1,
                    money(v * c), 0, "0.00000000", "0.00000000", "0"]  # fmt: skip

        response = json_response(request.order(symbol, request.price_rows(symbol, bars, fmt, 4)), 200, **headers)
        response.content_type = "application/json;charset=UTF-8"
        return response

    @staticmethod
    def _used_weight(request: ReplayRequest) -> int:
        minute = int(time.time() // 60)
        with request.state_lock:
            previous_minute, used = request.state.get("weight", (minute, 0))
            used = (used if previous_minute == minute else 0) + KLINES_WEIGHT
            request.state["weight"] = (minute, used)
        return used

    def rate_limited(self) -> Response:
        body = {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."}
        return json_response(body, 429, **{"Retry-After": "1"})

    def server_error(self, status: int) -> Response:
        body = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
        return json_response(body, status)

    def geo_blocked(self) -> Response:
        return json_response({"code": 0, "msg": RESTRICTED_MESSAGE}, 451)


PROVIDER = ProviderSpec(
    name="binance",
    kinds=(PRICES,),
    title="Binance spot",
    public_url="https://data-api.binance.vision",
    docs=(
        "https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data",
        "https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits",
    ),
    # Binance budgets request weight per minute, not requests per second: a burst of 10 (20 weight) is far inside
    # that budget, and the weight header (weight_budget) pauses every client long before a ban.
    rate_limit=RateLimit(5.0, 10.0, "6,000 request weight per minute per IP; klines cost 2"),
    history="since each pair's listing (BTCUSDT: 2017-08)",
    access=(
        "keyless; api.binance.com answers 451 from restricted locations (the US among them), "
        "the default data-api.binance.vision serves market data only"
    ),
    price_client=BinanceClient,
    replay=BinanceReplay(),
    default_rank=1,
)
