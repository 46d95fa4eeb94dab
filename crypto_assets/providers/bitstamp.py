"""Bitstamp OHLC: ``GET /api/v2/ohlc/btcusd/?step=3600&limit=1000&start=s&end=s`` (lower-case pair, 1000 rows max).

Keyless. Answers ``{"data":{"pair":"BTC/USD","ohlc":[{"timestamp":"s","open":"..","high":"..","low":"..",
"close":"..","volume":".."}, ...]}}``, oldest first; every value is a string.

How start, end and limit interact (Bitstamp's API reference, "OHLC data"): ``end`` is "Unix timestamp to when
OHLC data will be shown. If none from start or end timestamps are posted then endpoint returns OHLC data to
current unix time. If both start and end timestamps are posted, end timestamp will be used." So with both, the
answer is the ``limit`` candles ending at ``end``, whatever ``start`` says. The client therefore asks for chunks
of at most 1000 hours with ``end = start + (limit - 1) h`` (as ccxt does): the answer is the same whichever of
the two Bitstamp honours, and a chunk never depends on the previous answer (hours without a candle simply have
no row). Rows outside the asked range are dropped by BasePriceClient.

Errors: an unlisted pair (Bitstamp does not list every coin: no BNB) answers HTTP 404 -> UnknownSymbolError.
Other errors carry Bitstamp's error keys (``status: "error"``, ``reason``, ``code``, or ``response_code`` with the
documented ``400.xxx`` codes); ``400.002`` "Request rejected due to exceeded rate limit." is retryable.
Published limit: 400 requests per second, 10,000 per 10 minutes.
"""

from __future__ import annotations

from typing import Any

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.http import HttpStatusError
from crypto_assets.providers.prices import (
    HOUR,
    Bar,
    BasePriceClient,
    bad_body,
    excerpt,
    floor_hour,
    parse_number,
    parse_time,
)
from crypto_assets.providers.registry import PRICES, ProviderSpec, RateLimit, SymbolMap
from crypto_assets.replay.wire import (
    ReplayRequest,
    ReplayRoutes,
    Response,
    html_response,
    json_response,
    last_closed_open,
    money,
    plain,
)

OHLC_PREFIX = "/api/v2/ohlc/"
STEP = 3600
STEPS = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200)  # the documented choices
MAX_LIMIT = 1000
RATE_LIMIT_CODE = "400.002"
RATE_LIMIT_REASON = "Request rejected due to exceeded rate limit."
# Bundled symbols that Bitstamp does not list against USD: its replay answers 404 for them, as Bitstamp does.
UNLISTED = frozenset({"BNB"})


def ohlc_path(pair: str) -> str:
    return f"{OHLC_PREFIX}{pair}/"


def error_of(provider: str, body: Any, *, url: str = "", status: int | None = None) -> ProviderError | None:
    """The ProviderError a Bitstamp error body stands for (None when ``body`` is not one)."""
    if not isinstance(body, dict):
        return None
    if body.get("status") != "error" and "error" not in body and "errors" not in body:
        return None
    parts = [str(body[key]) for key in ("reason", "error", "errors", "response_explanation") if body.get(key)]
    code = body.get("response_code") or body.get("code")
    text = "; ".join(parts) or "no reason given"
    lowered = text.lower()
    retryable = str(code) == RATE_LIMIT_CODE or "rate limit" in lowered
    http = f" (HTTP {status})" if status is not None else ""
    return ProviderError(
        provider, url, f"error answer{f' {code}' if code else ''}: {text}{http}", retryable=retryable, status=status
    )


class BitstampClient(BasePriceClient):
    name = "bitstamp"
    symbols = SymbolMap("{sym}usd", lower=True)
    limit = MAX_LIMIT

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        pair = self.pair(symbol)
        bars: list[Bar] = []
        cursor = start_s
        while cursor < stop_s:
            count = min(self.limit, -(-(stop_s - cursor) // HOUR))
            params = {
                "step": STEP,
                "limit": count,
                "start": cursor,
                "end": cursor + (count - 1) * HOUR,
                "exclude_current_candle": "true",
            }
            bars.extend(self._get_parsed(ohlc_path(pair), params, self._parse, pair=pair))
            cursor += count * HOUR
        return bars

    def _status_error(self, exc: HttpStatusError, pair: str) -> ProviderError | None:
        if exc.status == 404:
            return UnknownSymbolError(self.name, exc.url, f"unknown pair {pair}: HTTP 404", status=404)
        return error_of(self.name, exc.json_body(), url=exc.url, status=exc.status)

    def _parse(self, body: Any) -> list[Bar]:
        error = error_of(self.name, body)
        if error is not None:
            raise error
        data = body.get("data") if isinstance(body, dict) else None
        rows = data.get("ohlc") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise bad_body(self.name, f"no data.ohlc list in the answer: {excerpt(body)}")
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, dict) or not {"timestamp", "open", "high", "low", "close", "volume"} <= row.keys():
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row["timestamp"], index=index, row=row, digits=True)
            o, h, lo, c, v = (
                parse_number(self.name, row[f], field_name=f, index=index, row=row)
                for f in ("open", "high", "low", "close", "volume")
            )
            bars.append((t, o, h, lo, c, v))
        bars.sort(key=lambda bar: bar[0])
        return bars


# ------------------------------------------------------------------------------------------------ replay


def error_response(reason: str, status: int = 400, code: str = "400.001") -> Response:
    """Bitstamp's documented error keys: ``status``, ``reason`` and a ``response_code`` from its code table."""
    return json_response({"status": "error", "reason": reason, "response_code": code}, status)


class BitstampReplay(ReplayRoutes):
    """``/api/v2/ohlc/<pair>/``: step=3600 only (the bundled data is hourly), ``end`` wins over ``start``, at most
    1000 rows oldest first, ``exclude_current_candle``; 404 for a pair Bitstamp does not list."""

    def route(self, request: ReplayRequest) -> Response:
        path = request.path
        if not path.startswith(OHLC_PREFIX):
            return self.not_found()
        pair = path[len(OHLC_PREFIX) :].strip("/")
        symbol = request.symbol_for(PROVIDER, pair) if pair and "/" not in pair else None
        if symbol is None or symbol in UNLISTED:
            return self.not_found()
        step = request.integer("step", lambda: error_response("Invalid step."))
        if step not in STEPS:
            return error_response("Invalid step.")
        if step != STEP:  # the real API serves every documented step; only hourly data is bundled
            return error_response("Only step=3600 is replayed.")
        limit = request.integer("limit", lambda: error_response("Invalid limit."))
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return error_response("Invalid limit.")
        start = request.integer("start", lambda: error_response("Invalid start."))
        end = request.integer("end", lambda: error_response("Invalid end."))
        exclude_current = (request.one("exclude_current_candle") or "").lower() in ("true", "1")

        series = request.series(symbol)
        newest = last_closed_open(request.clock_s) if exclude_current else floor_hour(request.clock_s)
        if end is not None:  # "If both start and end timestamps are posted, end timestamp will be used."
            bars = series.bars(-(2**62), min(end, newest), last=limit)
        elif start is not None:
            bars = series.bars(start, newest, first=limit)
        else:
            bars = series.bars(-(2**62), newest, last=limit)
        if bars:
            request.check_down_days(bars[0][0], bars[-1][0])

        def fmt(b: list[Any]) -> dict[str, Any]:
            t, o, h, low, c, v = b
            return {"timestamp": str(t), "open": plain(o), "high": plain(h), "low": plain(low), "close": plain(c),
                    "volume": money(v)}  # fmt: skip

        rows = request.order(symbol, request.price_rows(symbol, bars, fmt, "close"))
        return json_response({"data": {"pair": f"{symbol}/USD", "ohlc": rows}})

    def not_found(self) -> Response:
        return html_response(404, "404 Not Found", "The requested resource was not found on this server.")

    def rate_limited(self) -> Response:
        return error_response(RATE_LIMIT_REASON, 429, RATE_LIMIT_CODE)

    def server_error(self, status: int) -> Response:
        return html_response(status, f"{status} Server Error", "The server encountered an internal error.")


PROVIDER = ProviderSpec(
    name="bitstamp",
    kinds=(PRICES,),
    title="Bitstamp",
    public_url="https://www.bitstamp.net",
    docs=(
        "https://www.bitstamp.net/api/#tag/Market-info/operation/GetOHLCData",
        "https://www.bitstamp.net/api/#section/Response-codes",
    ),
    # 10,000 requests per 10 minutes is 16.7/s sustained: 5/s stays far inside.
    rate_limit=RateLimit(5.0, 5.0, "400 requests per second, 10,000 requests per 10 minutes"),
    history="since each pair's listing (btcusd: 2011)",
    access="keyless; USD pairs (<sym>usd, lower case); lists fewer coins than Binance (no BNB)",
    price_client=BitstampClient,
    replay=BitstampReplay(),
    default_rank=4,
)
