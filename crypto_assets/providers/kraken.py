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
    expect_object,
    parse_number,
    parse_time,
)
from crypto_assets.providers.registry import PRICES, ProviderSpec, RateLimit, SymbolMap
from crypto_assets.replay.wire import ReplayRequest, ReplayRoutes, Response, json_response, money, plain

OHLC_PATH = "/0/public/OHLC"
ROWS_KEPT = 720
MAX_PAGES = 10
# Kraken's result key for a pair differs from the pair name for its oldest markets.
RESULT_KEYS = {"XBTUSD": "XXBTZUSD", "ETHUSD": "XETHZUSD", "XRPUSD": "XXRPZUSD"}
PAIR_NAMES = {key: name for name, key in RESULT_KEYS.items()}
RETRYABLE_ERRORS = ("EAPI:Rate limit", "EService:Unavailable", "EService:Busy", "EGeneral:Temporary lockout")


class KrakenClient(BasePriceClient):
    name = "kraken"
    symbols = SymbolMap("{sym}USD", {"BTC": "XBT"})

    def _fetch_bars(self, symbol: str, start_s: int, stop_s: int) -> list[Bar]:
        pair = self.pair(symbol)
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
        errors = expect_object(self.name, body).get("error")
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


class KrakenReplay(ReplayRoutes):
    """``/0/public/OHLC``: only the latest 720 bars up to the clock exist; the last row is the running bar."""

    def route(self, request: ReplayRequest) -> Response:
        if request.path != OHLC_PATH:
            return self.not_found()

        def invalid() -> Response:
            return json_response({"error": ["EGeneral:Invalid arguments"]})

        pair = request.one("pair")
        if not pair:
            return invalid()
        name = PAIR_NAMES.get(pair, pair)  # the pair's name or its result key (XXBTZUSD) both work
        symbol = request.symbol_for(PROVIDER, name)
        if symbol is None:
            return json_response({"error": ["EQuery:Unknown asset pair"]})
        key = RESULT_KEYS.get(name, name)
        interval = request.integer("interval", invalid) or 1
        since = request.integer("since", invalid)
        if interval != 60:  # only hourly data is bundled (the real API also has 1 ... 21600 minutes)
            return invalid()
        series = request.series(symbol)
        # Every bar that has opened by the clock exists; the last one is still running (unless the bundled
        # data ends before the clock). Only the latest 720 exist at all.
        latest = series.last_open_at_or_before(request.clock_s)
        if latest is None:
            return json_response({"error": [], "result": {key: [], "last": 0}})
        window = series.bars(latest - (ROWS_KEPT - 1) * HOUR, latest)
        unfinished = latest + HOUR > request.clock_s
        last = latest - HOUR if unfinished else latest
        lo = window[0][0] if since is None else max(window[0][0], since + 1)
        request.check_down_days(min(lo, latest), latest)
        # "since" is exclusive; the running bar is always sent, whatever "since" says.
        bars = [bar for bar in window if since is None or bar[0] > since]
        if not bars or bars[-1][0] != latest:
            bars.append(window[-1])

        def fmt(bar: list[Any]) -> list[Any]:
            t, o, h, low, c, v = bar
            vwap = round((h + low + c) / 3, 8)  # typical price: the bundled data has no VWAP
            return [t, plain(o), plain(h), plain(low), plain(c), plain(vwap), money(v), 0]

        rows = request.order(symbol, request.price_rows(symbol, bars, fmt, 4))
        return json_response({"error": [], "result": {key: rows, "last": last}})

    def not_found(self) -> Response:
        return json_response({"error": ["EGeneral:Unknown method"]}, 404)

    def rate_limited(self) -> Response:
        return json_response({"error": ["EGeneral:Too many requests"]}, 429, **{"Retry-After": "1"})

    def server_error(self, status: int) -> Response:
        return json_response({"error": ["EService:Unavailable"]}, status)


PROVIDER = ProviderSpec(
    name="kraken",
    kinds=(PRICES,),
    title="Kraken",
    public_url="https://api.kraken.com",
    docs=(
        "https://docs.kraken.com/api/docs/rest-api/get-ohlc-data",
        "https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits",
    ),
    rate_limit=RateLimit(1.0, 1.0, "public endpoints: about 1 request per second per IP"),
    history="the latest 720 hours only",
    access="keyless; BTC is XBT; for the hourly refresh and recent days only",
    price_client=KrakenClient,
    replay=KrakenReplay(),
)
