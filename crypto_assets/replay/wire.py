"""What a provider module needs to speak its API format from the replay server: requests, responses, helpers.

Each provider module subclasses ``ReplayRoutes`` next to its client, so a provider's wire format (paths,
parameters, row layout, paging limits, error bodies) lives in one place, used by the client and the replay.
The server (``crypto_assets.replay.server``) owns the lifecycle, the fault stream and the bundled data, and
hands each request to the provider's routes as a ``ReplayRequest``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from crypto_assets.providers.prices import HOUR, floor_hour
from crypto_assets.replay.data import NewsIndex, Series
from crypto_assets.replay.faults import corrupt_bars, junk, shuffle_rows

if TYPE_CHECKING:
    from crypto_assets.providers.registry import ProviderSpec
    from crypto_assets.replay.faults import FaultConfig


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Reply(Exception):  # control flow: carries a finished response out of a route
    def __init__(self, response: Response) -> None:
        self.response = response


def json_response(payload: Any, status: int = 200, **headers: str) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json", dict(headers))


def text_response(text: str, status: int = 200, **headers: str) -> Response:
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8", dict(headers))


def html_response(status: int, title: str, text: str) -> Response:
    page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
    page += f"<p>{text}</p>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    return Response(status, page.encode("utf-8"), "text/html; charset=utf-8")


def down_response() -> Response:
    return html_response(503, "503 Service Unavailable", "No server is available to handle this request.")


def money(value: Any) -> Any:
    """A price as exchanges print it: a decimal string with 8 places."""
    return value if isinstance(value, str) else f"{value:.8f}"


def plain(value: Any) -> Any:
    """A price as a shortest-repr decimal string."""
    return value if isinstance(value, str) else repr(float(value))


def last_closed_open(clock_s: int) -> int:
    """Open time of the latest bar that has closed at the clock."""
    return floor_hour(clock_s) - HOUR


def query_time(value: str) -> int:
    """ISO 8601 (naive means UTC) or epoch seconds -> epoch seconds; ValueError otherwise."""
    try:
        return int(float(value))
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return math.floor(parsed.timestamp())


@dataclass
class BundledData:
    """The real recorded data the replay serves: price series by symbol and the news items."""

    series: Mapping[str, Series]
    news: NewsIndex


@dataclass
class ReplayRequest:
    """One provider request as the server hands it to the provider's routes."""

    provider: str
    method: str
    path: str  # below the provider prefix, e.g. /api/v3/klines
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names lower case
    clock_s: int
    data: BundledData
    faults: FaultConfig
    state: MutableMapping[str, Any]  # this provider's state on this server (e.g. Binance's weight counter)
    state_lock: threading.Lock

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def integer(self, name: str, on_error: Callable[[], Response]) -> int | None:
        """The parameter as an integer; None when absent or empty; ``on_error()`` is answered when malformed."""
        value = self.one(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise Reply(on_error()) from None

    def symbol_for(self, spec: ProviderSpec, name: str) -> str | None:
        """The bundled symbol a provider's instrument name means (None when the replay has no such series)."""
        assert spec.symbols is not None
        return spec.symbols.to_universe(name, self.data.series)

    def series(self, symbol: str) -> Series:
        """``symbol``'s bars as this provider has them: without the hours before a listing, after a delisting, or
        in a hole of this provider (FaultConfig)."""
        base = self.data.series[symbol]
        first, end, removed = self.faults.missing_opens(self.provider, symbol)
        if first is None and end is None and not removed:
            return base
        keep = np.ones(len(base.opens), dtype=bool)
        if first is not None:
            keep &= base.opens >= first
        if end is not None:
            keep &= base.opens < end
        if removed:
            keep &= ~np.isin(base.opens, np.fromiter(removed, dtype=np.int64))
        return Series(base.opens[keep], base.values[keep])

    def check_down_days(self, lo_s: int, hi_s: int) -> None:
        """Answer 503 when bar opens in ``[lo_s, hi_s]`` touch a configured down day."""
        if self.faults.overlaps_down_day(lo_s, max(lo_s, hi_s)):
            raise Reply(down_response())

    def price_rows(
        self, symbol: str, bars: list[list[Any]], fmt: Callable[[list[Any]], Any], close_key: Any
    ) -> list[Any]:
        """Corrupt (as configured for this provider and symbol), format and junk ascending bars, and shuffle them
        when configured; returns the provider rows."""
        corruptions = self.faults.corruptions(self.provider, symbol)
        bars = corrupt_bars(bars, corruptions)
        rows = [fmt(bar) for bar in bars]
        if "junk_strings" in corruptions and rows:
            rows[0][close_key] = junk(rows[0][close_key])
        return rows

    def order(self, symbol: str, rows: list[Any]) -> list[Any]:
        shuffled = "out_of_order" in self.faults.corruptions(self.provider, symbol)
        return shuffle_rows(rows, self.faults.seed) if shuffled else rows


class ReplayRoutes:
    """How the replay server speaks one provider's API. Subclasses implement ``route`` and the error bodies."""

    def route(self, request: ReplayRequest) -> Response:
        return self.not_found()

    def not_found(self) -> Response:
        return text_response("Not Found", 404)

    def rate_limited(self) -> Response:
        return text_response("Too Many Requests", 429, **{"Retry-After": "1"})

    def server_error(self, status: int) -> Response:
        return html_response(status, f"{status} Server Error", "The server encountered an internal error.")

    def unauthorized(self) -> Response:
        """The answer to a request without credentials when the replay demands a key."""
        return text_response("Unauthorized", 401)

    def geo_blocked(self) -> Response:
        return text_response("Unavailable For Legal Reasons", 451)

    def has_key(self, request: ReplayRequest) -> bool:
        """Whether the request carries this provider's credentials."""
        return False

    def env(self, spec: ProviderSpec, base_url: str) -> dict[str, str]:
        """The ``CRYPTO_ASSETS_*`` variables that point a client at this replay (base URL below the server)."""
        return {spec.url_env: base_url} if spec.url_env else {}
