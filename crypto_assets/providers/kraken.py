"""Kraken OHLC: ``GET /0/public/OHLC?pair=XBTUSD&interval=60&since=s``.

Only the latest 720 bars exist, so older days come back empty (failover moves them on). The result
key is the pair's internal name (``XXBTZUSD``), i.e. the first key that is not ``last``. Rows after
``last`` are not committed yet (the last row is the unfinished bar) and are dropped.
"""

from __future__ import annotations

from typing import Any

from crypto_assets.errors import ProviderError, UnknownSymbolError
from crypto_assets.providers.prices import (
    HOUR,
    Bar,
    BasePriceClient,
    bad_body,
    excerpt,
    parse_number,
    parse_time,
)
from crypto_assets.symbols import provider_symbol

OHLC_PATH = "/0/public/OHLC"
ROWS_KEPT = 720
MAX_PAGES = 10
RETRYABLE_ERRORS = ("EAPI:Rate limit", "EService:Unavailable", "EService:Busy", "EGeneral:Temporary lockout")


class KrakenClient(BasePriceClient):
    name = "kraken"
    rate_per_second = 1.0

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        pair = provider_symbol("kraken", symbol)
        bars: list[Bar] = []
        since = start_s - 1  # whether "since" is inclusive or not, the bar at start_s comes back
        for _ in range(MAX_PAGES):
            params = {"pair": pair, "interval": 60, "since": since}
            page, last = self._get_parsed(OHLC_PATH, params, self._parse)
            committed = [bar for bar in page if last is None or bar[0] <= last]
            bars.extend(committed)
            # One answer holds every bar since `since` up to 720; page on only if it was full.
            if len(page) < ROWS_KEPT or last is None or last <= since or last + HOUR >= stop_s:
                break
            since = last
        return bars

    def _parse(self, body: Any) -> tuple[list[Bar], int | None]:
        if not isinstance(body, dict):
            raise bad_body(self.name, f"expected a JSON object, got {type(body).__name__}: {excerpt(body)}")
        errors = body.get("error")
        if errors:
            messages = [str(e) for e in errors] if isinstance(errors, list) else [str(errors)]
            text = "; ".join(messages)
            if any("Unknown asset pair" in m for m in messages):
                raise UnknownSymbolError(self.name, "", f"unknown asset pair: {text}")
            retryable = any(m.startswith(RETRYABLE_ERRORS) for m in messages)
            raise ProviderError(self.name, "", f"error response: {text}", retryable=retryable)
        result = body.get("result")
        if not isinstance(result, dict):
            raise bad_body(self.name, f"no result object in the answer: {excerpt(body)}")
        key = next((k for k in result if k != "last"), None)
        rows = result.get(key) if key is not None else []
        if not isinstance(rows, list):
            raise bad_body(self.name, f"result {key!r} is not a list: {excerpt(rows)}")
        last_raw = result.get("last")
        last: int | None
        try:
            last = int(last_raw) if last_raw is not None and not isinstance(last_raw, bool) else None
        except (TypeError, ValueError):
            raise bad_body(self.name, f"'last' {last_raw!r} is not an integer") from None
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) < 7:
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row[0], index=index, row=row)
            o, h, lo, c, v = (
                parse_number(self.name, row[i], field_name=f, index=index, row=row)
                for i, f in ((1, "open"), (2, "high"), (3, "low"), (4, "close"), (6, "volume"))
            )
            bars.append((t, o, h, lo, c, v))
        bars.sort(key=lambda bar: bar[0])
        return bars, last
