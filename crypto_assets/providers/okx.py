"""OKX candlesticks history: ``GET /api/v5/market/history-candles?instId=BTC-USDT&bar=1H&after=ms&before=ms&limit=100``.

Keyless. Answers ``{"code":"0","msg":"","data":[[ts_ms, o, h, l, c, vol, volCcy, volCcyQuote, confirm], ...]}``,
newest first. ``after`` asks for rows *earlier than* that ms, ``before`` for rows *newer than* it (both
exclusive: the documentation's words, and ccxt sends ``before = since - 1`` to include ``since``); with both,
the newest rows between them come back, so a window is paged backwards by moving ``after`` to the oldest row
received. ``confirm`` "0" marks the unfinished bar, which is dropped.

Errors come as ``{"code": "<non-zero>", "msg": ..., "data": []}`` with HTTP 200 (51001: the instrument does not
exist) or HTTP 400 (51000 and 50014: a bad or missing parameter); over the published limit (20 requests per
2 s per IP) the answer is HTTP 429 with code 50011, which HttpClient retries.

The page size: older copies of the documentation say "The maximum is 100", newer ones "The maximum is 300"
for this endpoint. The client asks for 100 (valid under both) and pages on the rows it gets, so it never
depends on which is true.
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
    expect_object,
    parse_number,
    parse_time,
)
from crypto_assets.providers.registry import PRICES, ProviderSpec, RateLimit, SymbolMap
from crypto_assets.replay.wire import (
    ReplayRequest,
    ReplayRoutes,
    Response,
    json_response,
    plain,
)

HISTORY_CANDLES_PATH = "/api/v5/market/history-candles"
BAR = "1H"
MAX_LIMIT = DEFAULT_LIMIT = 100
ROW_FIELDS = 9  # ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm
OK_CODE = "0"
UNKNOWN_INSTRUMENT_CODE = "51001"
PARAMETER_ERROR_CODE = "51000"
PARAMETER_EMPTY_CODE = "50014"
RATE_LIMIT_CODE = "50011"
# Codes that say "try again later" (OKX's REST error-code table): rate limit, service/system busy or down, timeouts.
RETRYABLE_CODES = frozenset({RATE_LIMIT_CODE, "50001", "50004", "50013", "50026", "51054"})
# The wording OKX answers today; older documentation says "Instrument ID does not exist".
UNKNOWN_INSTRUMENT_MSG = "Instrument ID, Instrument ID code, or Spread ID doesn't exist."
RATE_LIMIT_MSG = "Rate limit reached. Please refer to API documentation and throttle requests accordingly."


def envelope_error(provider: str, body: Any, *, url: str = "", status: int | None = None) -> ProviderError | None:
    """The error an OKX envelope ``{"code": ..., "msg": ...}`` stands for (None for code "0" or no envelope)."""
    if not isinstance(body, dict) or "code" not in body:
        return None
    code = str(body.get("code"))
    if code == OK_CODE:
        return None
    msg = str(body.get("msg") or "no message")
    http = f" (HTTP {status})" if status is not None else ""
    if code == UNKNOWN_INSTRUMENT_CODE:
        return UnknownSymbolError(provider, url, f"unknown instrument: code {code}: {msg}{http}", status=status)
    retryable = code in RETRYABLE_CODES
    return ProviderError(provider, url, f"error code {code}: {msg}{http}", retryable=retryable, status=status)


class OkxClient(BasePriceClient):
    name = "okx"
    symbols = SymbolMap("{sym}-USDT")
    limit = MAX_LIMIT

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        inst = self.pair(symbol)
        bars: list[Bar] = []
        after_ms = stop_s * 1000  # rows strictly older than the first hour we do not want
        before_ms = start_s * 1000 - 1  # rows strictly newer than this: from start_s on
        while after_ms > start_s * 1000:
            params = {"instId": inst, "bar": BAR, "after": after_ms, "before": before_ms, "limit": self.limit}
            page, rows = self._get_parsed(HISTORY_CANDLES_PATH, params, self._parse)
            bars.extend(page)
            if rows < self.limit or not page:
                break  # the answer held everything between before and after
            oldest_ms = min(bar[0] for bar in page) * 1000
            if oldest_ms >= after_ms:
                break  # no progress: never loop on a server that ignores ``after``
            after_ms = oldest_ms
        return bars

    def _status_error(self, exc: HttpStatusError, pair: str) -> ProviderError | None:
        # HTTP 400 (and other 4xx) carry the same envelope: name its code, and map 51001 to an unknown symbol.
        return envelope_error(self.name, exc.json_body(), url=exc.url, status=exc.status)

    def _parse(self, body: Any) -> tuple[list[Bar], int]:
        """Finished bars of one answer (ascending) and the number of rows the answer held."""
        error = envelope_error(self.name, expect_object(self.name, body))
        if error is not None:
            raise error
        if "code" not in body:
            raise bad_body(self.name, f"no code in the answer: {excerpt(body)}")
        rows = body.get("data")
        if not isinstance(rows, list):
            raise bad_body(self.name, f"no data list in the answer: {excerpt(body)}")
        bars: list[Bar] = []
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) < 6:
                raise bad_body(self.name, f"unexpected row shape at index {index}: {excerpt(row)}")
            t = parse_time(self.name, row[0], index=index, row=row, divisor=1000, digits=True)
            o, h, lo, c, v = (
                parse_number(self.name, row[i], field_name=f, index=index, row=row)
                for i, f in ((1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume"))
            )
            confirm = str(row[8]) if len(row) >= ROW_FIELDS else "1"
            if confirm not in ("0", "1"):
                raise bad_body(self.name, f"confirm {row[8]!r} is neither '0' nor '1' at index {index}: {excerpt(row)}")
            if confirm == "0":
                continue  # the bar is still running
            bars.append((t, o, h, lo, c, v))
        bars.sort(key=lambda bar: bar[0])
        return bars, len(rows)


# ------------------------------------------------------------------------------------------------ replay


def error_response(code: str, msg: str, status: int = 200) -> Response:
    return json_response({"code": code, "msg": msg, "data": []}, status)


class OkxReplay(ReplayRoutes):
    """``/api/v5/market/history-candles``: bar=1H only (the bundled data is hourly), newest first, at most 100 rows
    between ``before`` and ``after`` (both exclusive), the running bar with confirm "0", OKX's error envelopes."""

    def route(self, request: ReplayRequest) -> Response:
        if request.path.rstrip("/") != HISTORY_CANDLES_PATH:
            return self.not_found()
        inst = request.one("instId")
        if not inst:
            return error_response(PARAMETER_EMPTY_CODE, "Parameter instId can not be empty.", 400)
        symbol = request.symbol_for(PROVIDER, inst)
        if symbol is None:
            return error_response(UNKNOWN_INSTRUMENT_CODE, UNKNOWN_INSTRUMENT_MSG)
        bar = request.one("bar") or "1m"  # OKX's default bar is 1m, which the bundled hourly data cannot serve
        if bar != BAR:
            return error_response(PARAMETER_ERROR_CODE, "Parameter bar error", 400)

        def bad(name: str) -> Response:
            return error_response(PARAMETER_ERROR_CODE, f"Parameter {name} error", 400)

        after = request.integer("after", lambda: bad("after"))
        before = request.integer("before", lambda: bad("before"))
        limit = request.integer("limit", lambda: bad("limit"))
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            return bad("limit")

        series = request.series(symbol)
        # Every bar that has opened by the clock exists; the one still running is sent with confirm "0".
        hi = request.clock_s if after is None else min(request.clock_s, -(-after // 1000) - 1)
        lo = -(2**62) if before is None else before // 1000 + 1
        # before ms exclusive and after ms exclusive, in whole seconds: open_s * 1000 in (before, after).
        bars = [b for b in series.bars(lo, hi) if (before is None or b[0] * 1000 > before)]
        if after is not None:
            bars = [b for b in bars if b[0] * 1000 < after]
        bars = bars[-limit:]  # the newest `limit` rows of the range
        if bars:
            request.check_down_days(bars[0][0], bars[-1][0])
        clock = request.clock_s

        def fmt(b: list[Any]) -> list[Any]:
            t, o, h, low, c, v = b
            quote = plain(round(v * c, 8))
            return [str(t * 1000), plain(o), plain(h), plain(low), plain(c), plain(v), quote, quote,
                    "0" if t + HOUR > clock else "1"]  # fmt: skip

        rows = request.price_rows(symbol, bars, fmt, 4)
        rows.reverse()  # newest first
        return json_response({"code": OK_CODE, "msg": "", "data": request.order(symbol, rows)})

    def rate_limited(self) -> Response:
        return json_response({"code": RATE_LIMIT_CODE, "msg": RATE_LIMIT_MSG, "data": []}, 429)

    def server_error(self, status: int) -> Response:
        return error_response("50001", "Service temporarily unavailable. Please try again later.", status)


PROVIDER = ProviderSpec(
    name="okx",
    kinds=(PRICES,),
    title="OKX spot",
    public_url="https://www.okx.com",
    docs=(
        "https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-candlesticks-history",
        "https://www.okx.com/docs-v5/en/#error-code-rest-api",
    ),
    # A bucket of 5/s with a burst of 5 sends at most 15 requests in any 2 s.
    rate_limit=RateLimit(5.0, 5.0, "20 requests per 2 seconds per IP (history-candles)"),
    history="years of hourly bars per spot pair (history-candles)",
    access="keyless; USDT pairs (<SYM>-USDT); unavailable to US residents",
    price_client=OkxClient,
    replay=OkxReplay(),
    default_rank=2,
)
