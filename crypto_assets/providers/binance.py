"""Binance spot klines: ``GET /api/v3/klines`` (1000 rows per request, times in ms, endTime inclusive)."""

from __future__ import annotations

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

KLINES_PATH = "/api/v3/klines"
INVALID_SYMBOL_CODE = -1121


class BinanceClient(BasePriceClient):
    name = "binance"
    rate_per_second = 5.0
    # Binance budgets request weight per minute (klines cost 2), not requests per second: a burst of 10
    # (20 weight) is far inside that budget, and the weight header below pauses us long before a ban.
    burst = 10.0
    limit = 1000
    # 1200 request weight per minute per IP (klines cost 2); stop well before the ban threshold.
    weight_budget = 1000

    def _http_options(self) -> dict[str, Any]:
        return {
            **super()._http_options(),
            "weight_header": "x-mbx-used-weight-1m",
            "weight_budget": self.weight_budget,
        }

    def _auth_headers(self) -> dict[str, str]:
        return {"X-MBX-APIKEY": self.api_key} if self.api_key else {}

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        pair = provider_symbol("binance", symbol)
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
            page: list[Bar] = self._get(pair, params)
            bars.extend(page)
            if len(page) < self.limit:
                break
            following = (page[-1][0] + HOUR) * 1000
            if following <= cursor:
                break
            cursor = following
        return bars

    def _get(self, pair: str, params: dict[str, Any]) -> list[Bar]:
        error: HttpStatusError | None = None
        try:
            return self._get_parsed(KLINES_PATH, params, self._parse)
        except HttpStatusError as exc:
            body = exc.json_body()
            if not (isinstance(body, dict) and body.get("code") == INVALID_SYMBOL_CODE):
                raise
            error = exc
        raise UnknownSymbolError(
            self.name, error.url, f"unknown symbol {pair}: {error.json_body().get('msg')} (HTTP {error.status})"
        )

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
