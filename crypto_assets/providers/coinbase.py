"""Coinbase Exchange candles: ``GET /products/<SYM>-USD/candles`` (300 rows max, newest first).

Rows are ``[time, low, high, open, close, volume]``. ``start`` and ``end`` are both inclusive, so a
300-hour window asks for ``end = start + 299 h`` (as ccxt does). Hours without trades have no row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from crypto_assets.errors import UnknownSymbolError
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
from crypto_assets.symbols import provider_symbol

GRANULARITY = 3600


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CoinbaseClient(BasePriceClient):
    name = "coinbase"
    rate_per_second = 3.0
    # Coinbase Exchange allows 10 public requests/s per IP, bursts to 15: a burst of 6 (the hourly
    # second-provider sample's one request per symbol of the default universe) stays well inside.
    burst = 6.0
    limit = 300

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        product = provider_symbol("coinbase", symbol)
        path = f"/products/{product}/candles"
        bars: list[Bar] = []
        window_start = start_s
        while window_start < stop_s:
            window_stop = min(window_start + self.limit * HOUR, stop_s)
            params = {"granularity": GRANULARITY, "start": iso(window_start), "end": iso(window_stop - HOUR)}
            bars.extend(self._get(product, path, params))
            window_start = window_stop
        return bars

    def _get(self, product: str, path: str, params: dict[str, Any]) -> list[Bar]:
        error: HttpStatusError | None = None
        try:
            return self._get_parsed(path, params, self._parse)
        except HttpStatusError as exc:
            body = exc.json_body()
            if exc.status != 404 or not (isinstance(body, dict) and str(body.get("message", "")).lower() == "notfound"):
                raise
            error = exc
        raise UnknownSymbolError(self.name, error.url, f"unknown product {product}: NotFound (HTTP 404)")

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
