"""CryptoCompare hourly history: ``GET /data/v2/histohour`` paged backwards with ``toTs``.

A request returns ``limit + 1`` rows ending at ``toTs`` (inclusive). Errors come as HTTP 200 with
``"Response": "Error"``. Hours before a coin has data are returned as all-zero rows; they are dropped.
The optional API key goes in the ``authorization: Apikey <key>`` header, never in the URL.
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

HISTOHOUR_PATH = "/data/v2/histohour"
MAX_LIMIT = 2000


def check_envelope(provider: str, body: Any) -> None:
    """Raise for ``"Response": "Error"`` bodies: unknown pairs are UnknownSymbolError, rate limits retryable."""
    if not isinstance(body, dict):
        raise bad_body(provider, f"expected a JSON object, got {type(body).__name__}: {excerpt(body)}")
    if body.get("Response") != "Error":
        return
    message = str(body.get("Message") or "no message")
    lowered = message.lower()
    if "does not exist" in lowered and ("market" in lowered or "pair" in lowered or "coin" in lowered):
        raise UnknownSymbolError(provider, "", f"unknown symbol: {message}")
    retryable = "rate limit" in lowered
    raise ProviderError(provider, "", f"error response: {message}", retryable=retryable)


class CryptoCompareClient(BasePriceClient):
    name = "cryptocompare"
    rate_per_second = 15.0
    limit = MAX_LIMIT

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Apikey {self.api_key}"} if self.api_key else {}

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        bars: list[Bar] = []
        to_ts = stop_s - HOUR  # last bar wanted, inclusive
        while to_ts >= start_s:
            limit = max(1, min(self.limit, (to_ts - start_s) // HOUR))
            params = {"fsym": symbol, "tsym": "USD", "limit": limit, "toTs": to_ts}
            page: list[Bar] = self._get_parsed(HISTOHOUR_PATH, params, self._parse)
            real = [bar for bar in page if bar[0] <= to_ts and any(bar[1:5])]
            bars.extend(real)
            earliest = min(page, default=None)
            if not real or earliest is None or earliest[0] > to_ts or not any(earliest[1:5]):
                break  # nothing (more) before this point: empty page or the coin's pre-listing zeros
            to_ts = earliest[0] - HOUR
        return bars

    def _parse(self, body: Any) -> list[Bar]:
        check_envelope(self.name, body)
        data = body.get("Data")
        rows = data.get("Data") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise bad_body(self.name, f"no Data list in the answer: {excerpt(body)}")
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, dict) or not {"time", "open", "high", "low", "close", "volumefrom"} <= row.keys():
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row["time"], index=index, row=row)
            o, h, lo, c, v = (
                parse_number(self.name, row[f], field_name=f, index=index, row=row)
                for f in ("open", "high", "low", "close", "volumefrom")
            )
            bars.append((t, o, h, lo, c, v))
        return bars
