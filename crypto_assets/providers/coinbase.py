"""Coinbase Exchange candles: ``GET /products/<SYM>-USD/candles`` (300 rows max, newest first).

Rows are ``[time, low, high, open, close, volume]``. ``start`` and ``end`` are both inclusive, so a
300-hour window asks for ``end = start + 299 h`` (as ccxt does). Hours without trades have no row. Keyless.
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
    expect_list,
    iso_z,
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
    query_time,
)

GRANULARITY = 3600
MAX_CANDLES = 300


class CoinbaseClient(BasePriceClient):
    name = "coinbase"
    symbols = SymbolMap("{sym}-USD")
    limit = MAX_CANDLES

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        product = self.pair(symbol)
        path = f"/products/{product}/candles"
        bars: list[Bar] = []
        window_start = start_s
        while window_start < stop_s:
            window_stop = min(window_start + self.limit * HOUR, stop_s)
            params = {"granularity": GRANULARITY, "start": iso_z(window_start), "end": iso_z(window_stop - HOUR)}
            bars.extend(self._get_parsed(path, params, self._parse, pair=product))
            window_start = window_stop
        return bars

    def _status_error(self, exc: HttpStatusError, pair: str) -> ProviderError | None:
        body = exc.json_body()
        if exc.status != 404 or not (isinstance(body, dict) and str(body.get("message", "")).lower() == "notfound"):
            return None
        return UnknownSymbolError(self.name, exc.url, f"unknown product {pair}: NotFound (HTTP 404)")

    def _parse(self, body: Any) -> list[Bar]:
        if isinstance(body, dict) and "message" in body:
            raise bad_body(self.name, f"error answer: {body['message']}")
        rows = expect_list(self.name, body, "candles")
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != 6:
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row[0], index=index, row=row)
            lo, h, o, c, v = (
                parse_number(self.name, row[i], field_name=f, index=index, row=row)
                for i, f in ((1, "low"), (2, "high"), (3, "open"), (4, "close"), (5, "volume"))
            )
            bars.append((t, o, h, lo, c, v))
        bars.sort(key=lambda bar: bar[0])
        return bars


class CoinbaseReplay(ReplayRoutes):
    """``/products/<product>/candles``: hourly granularity only, more than 300 candles asked is a 400."""

    def route(self, request: ReplayRequest) -> Response:
        path = request.path
        if not (path.startswith("/products/") and path.endswith("/candles")):
            return self.not_found()
        product = path[len("/products/") : -len("/candles")]
        symbol = request.symbol_for(PROVIDER, product) if "/" not in product else None
        if symbol is None:
            return json_response({"message": "NotFound"}, 404)
        granularity = request.integer("granularity", lambda: json_response({"message": "Unsupported granularity"}, 400))
        if granularity != GRANULARITY:  # only hourly data is bundled (the real API also has 60 ... 86400)
            return json_response({"message": "Unsupported granularity"}, 400)
        start_raw, end_raw = request.one("start"), request.one("end")
        newest = last_closed_open(request.clock_s)
        if start_raw and end_raw:  # as the real API: if either is missing, both are ignored
            try:
                start = query_time(start_raw)
            except ValueError:
                return json_response({"message": "Invalid start"}, 400)
            try:
                end = query_time(end_raw)
            except ValueError:
                return json_response({"message": "Invalid end"}, 400)
            if start > end:
                return json_response({"message": "start must be before end"}, 400)
            count = end // HOUR - (-(-start // HOUR)) + 1
            if count > MAX_CANDLES:
                message = (
                    "granularity too small for the requested time range. Count of aggregations requested exceeds 300"
                )
                return json_response({"message": message}, 400)
        else:
            end = newest
            start = end - (MAX_CANDLES - 1) * HOUR
        request.check_down_days(start, end)
        bars = request.series(symbol).bars(start, min(end, newest))

        def fmt(bar: list[Any]) -> list[Any]:
            t, o, h, low, c, v = bar
            return [t, low, h, o, c, v]

        rows = request.price_rows(symbol, bars, fmt, 4)
        rows.reverse()  # newest first
        return json_response(request.order(symbol, rows))

    def rate_limited(self) -> Response:
        return json_response({"message": "Public rate limit exceeded"}, 429, **{"Retry-After": "1"})

    def server_error(self, status: int) -> Response:
        return json_response({"message": "Internal server error"}, status)


PROVIDER = ProviderSpec(
    name="coinbase",
    kinds=(PRICES,),
    title="Coinbase Exchange",
    public_url="https://api.exchange.coinbase.com",
    docs=(
        "https://docs.cdp.coinbase.com/exchange/reference/exchangerestapi_getproductcandles",
        "https://docs.cdp.coinbase.com/exchange/rest-api/rate-limits",
    ),
    # A burst of 6 (one request per symbol of the default universe) stays well inside the published limit.
    rate_limit=RateLimit(3.0, 6.0, "10 public requests per second per IP, bursts to 15"),
    history="since each product's listing; USD pairs",
    access="keyless; lists fewer coins than Binance (no BNB)",
    price_client=CoinbaseClient,
    replay=CoinbaseReplay(),
    default_rank=3,
)
