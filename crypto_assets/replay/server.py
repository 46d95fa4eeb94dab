"""A local HTTP server that replays the bundled real data in each provider's own API format.

The pipeline's HTTP clients talk to it exactly as to the live APIs (point them at it with the
``CRYPTO_ASSETS_*_URL`` variables from ``ReplayServer.env()``), which makes the offline demo and the
tests exercise the same code paths, including paging limits, error envelopes and injected faults.
Only the stdlib ``http.server`` is used, so it starts in milliseconds and needs nothing installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from crypto_assets.errors import ConfigError
from crypto_assets.providers import registry
from crypto_assets.replay.data import (
    BUNDLED_SYMBOLS,
    WINDOW_END,
    bundled_news_index,
    bundled_series,
    with_aliases,
)
from crypto_assets.replay.faults import CORRUPTIONS, FAULT_KINDS, Fault, FaultConfig, decide, sheds
from crypto_assets.replay.wire import (
    BundledData,
    ReplayRequest,
    ReplayRoutes,
    Reply,
    Response,
    down_response,
    html_response,
    json_response,
)

DEFAULT_PORT = 8765
DEFAULT_CLOCK = WINDOW_END  # 2022-08-02T00:00:00Z: every bundled bar is closed


def replayed_providers() -> dict[str, ReplayRoutes]:
    """The routes of every provider the registry declares a replay format for, by provider name."""
    return {spec.name: spec.replay for spec in registry.all_providers() if spec.replay is not None}


def html_fault(status: int) -> Response:
    if status == 200:
        page = (
            "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
            "<h1>Checking your browser before accessing the site.</h1>"
            "<p>This process is automatic. Your browser will redirect to your requested content shortly.</p>"
            "</body></html>"
        )
        return Response(200, page.encode("utf-8"), "text/html; charset=utf-8")
    return html_response(status, f"{status} Bad Gateway", "The upstream server returned an invalid response.")


def parse_clock(value: str | datetime) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"clock {value!r} is not an ISO 8601 time such as 2022-08-02T00:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# ------------------------------------------------------------------------------------------- server


class ReplayServer:
    """The replay HTTP server; use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        clock: datetime | None = None,
        *,
        log_requests: bool = False,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """``aliases`` (benchmark-only) maps extra symbols to bundled ones, e.g. ``{"ZZ01": "BTC"}``: every
        provider then serves the BTC bars under ZZ01 too, so benchmarks can scale the universe past the
        six bundled symbols. The bars are the bundled symbol's, so never mistake them for real data."""
        self.host = host
        self.port = port
        self.log_requests = log_requests
        self._faults = faults or FaultConfig()
        self._clock = parse_clock(clock or DEFAULT_CLOCK)
        self._lock = threading.Lock()
        self._fault_counters: dict[str, int] = {}
        self._routes = replayed_providers()
        self._stats = dict.fromkeys(self._routes, 0)
        self._faults_served: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._state: dict[str, dict[str, Any]] = {name: {} for name in self._routes}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Load (and cache) the bundled data up front so the first request is as fast as the others.
        self._data = BundledData(with_aliases(bundled_series(), aliases or {}), bundled_news_index())

    # -- lifecycle
    def start(self) -> ReplayServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    # -- addresses
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def base_url(self, provider: str) -> str:
        if provider not in self._routes:
            raise ConfigError(f"unknown provider {provider!r}; choose from {', '.join(self._routes)}")
        return f"{self.url}/{provider}"

    def env(self) -> dict[str, str]:
        """``CRYPTO_ASSETS_*`` variables that point every replayed provider at this server.

        Client-side rate limits are off: they protect the real providers, and this server is not one.
        Retries, ``Retry-After``, timeouts and circuit breaking still apply to what it serves.
        """
        env: dict[str, str] = {}
        for name, routes in self._routes.items():
            env.update(routes.env(registry.provider(name), self.base_url(name)))
        env["CRYPTO_ASSETS_RATE_LIMITS"] = "off"
        return env

    # -- state
    def stats(self) -> dict[str, int]:
        """Provider requests served so far (faulted ones included), per provider."""
        with self._lock:
            return dict(self._stats)

    def fault_stats(self) -> dict[str, int]:
        """Random faults served so far, per kind (down providers and down days are not counted here)."""
        with self._lock:
            return dict(self._faults_served)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = dict.fromkeys(self._routes, 0)
            self._faults_served = dict.fromkeys(FAULT_KINDS, 0)

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    def set_faults(self, faults: FaultConfig | Mapping[str, Any] | None) -> None:
        """Replace the fault configuration; restarts the deterministic fault stream at request 0."""
        config = FaultConfig.from_dict(dict(faults)) if isinstance(faults, Mapping) else (faults or FaultConfig())
        with self._lock:
            self._faults = config
            self._fault_counters = {}

    @property
    def clock(self) -> datetime:
        return self._clock

    def set_clock(self, now: datetime | str) -> None:
        self._clock = parse_clock(now)

    # -- request handling (called from handler threads)
    def _admit(self, provider: str) -> tuple[FaultConfig, Fault | None, bool, int]:
        """Count the request and draw its fault: (config, random fault, shed, clock)."""
        with self._lock:
            config = self._faults
            n = self._fault_counters.get(provider, 0)
            self._fault_counters[provider] = n + 1
            self._stats[provider] += 1
            fault = None if provider in config.down else decide(config, n, provider)
            if fault is not None:
                self._faults_served[fault.kind] += 1
            return config, fault, sheds(config, provider, n), int(self._clock.timestamp())

    @property
    def data(self) -> BundledData:
        return self._data

    def handle(self, method: str, raw_path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        segments = [s for s in path.split("/") if s]
        if not segments:
            return json_response({"service": "crypto_assets replay", "providers": list(self._routes)})
        if segments[0].startswith("_"):
            return self._admin(method, segments, body)
        provider = segments[0]
        routes = self._routes.get(provider)
        if routes is None:
            return Response(404, b"Not Found", "text/plain; charset=utf-8")
        config, fault, shed, clock_s = self._admit(provider)
        request = ReplayRequest(
            provider=provider,
            method=method,
            path="/" + "/".join(segments[1:]) + ("/" if path.endswith("/") and len(segments) > 1 else ""),
            query=query,
            headers={name.lower(): value for name, value in (headers or {}).items()},
            clock_s=clock_s,
            data=self._data,
            faults=config,
            state=self._state[provider],
            state_lock=self._lock,
        )
        if provider in config.down:
            return down_response()
        if provider in config.geo_blocked:
            return routes.geo_blocked()
        if provider in config.require_keys and not routes.has_key(request):
            return routes.unauthorized()
        if shed or (fault is not None and fault.kind == "429"):
            return routes.rate_limited()
        if fault is not None and fault.kind == "5xx":
            return routes.server_error(fault.status)
        if fault is not None and fault.kind == "html":
            return html_fault(fault.status)
        if method != "GET":
            return Response(405, b"Method Not Allowed", "text/plain; charset=utf-8")
        try:
            response = routes.route(request)
        except Reply as reply:
            response = reply.response
        if fault is not None and fault.kind == "slow":
            self._stopping.wait(config.slow_seconds)
        if fault is not None and fault.kind == "truncated":
            response.body = response.body[: len(response.body) // 2]
        return response

    def _admin(self, method: str, segments: list[str], body: bytes) -> Response:
        name = segments[0]
        try:
            if name == "_health" and method == "GET":
                return json_response(
                    {
                        "status": "ok",
                        "clock": self._clock.isoformat(),
                        "symbols": list(self._data.series),
                        "url": self.url,
                    }
                )
            if name == "_stats" and method == "GET":
                return json_response(self.stats())
            if name == "_stats" and method == "POST" and segments[1:] == ["reset"]:
                self.reset_stats()
                return json_response(self.stats())
            if name == "_faults" and method == "GET":
                return json_response({"config": self._faults.to_dict(), "served": self.fault_stats()})
            if name == "_faults" and method == "POST":
                self.set_faults(FaultConfig.from_json(body))
                return json_response(self._faults.to_dict())
            if name == "_clock" and method == "GET":
                return json_response({"now": self._clock.isoformat()})
            if name == "_clock" and method == "POST":
                payload = json.loads(body or b"{}")
                if not isinstance(payload, dict) or "now" not in payload:
                    raise ConfigError('expected a JSON object {"now": "2022-08-02T00:00:00Z"}')
                self.set_clock(str(payload["now"]))
                return json_response({"now": self._clock.isoformat()})
        except (ConfigError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"error": f"no admin endpoint {method} /{'/'.join(segments)}"}, 404)


# ------------------------------------------------------------------------------------- http plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], replay: ReplayServer) -> None:
        self.replay = replay
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """End kept-alive connections too, so that a stopped server really stops answering."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crypto-assets-replay/1"
    timeout = 60  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms per request
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            response = self.server.replay.handle(method, self.path, body, dict(self.headers.items()))
        except Exception as exc:  # a bug here must not kill the connection silently
            response = json_response({"error": f"replay server error: {type(exc).__name__}: {exc}"}, 500)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.replay.log_requests:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")


# ---------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``crypto-assets replay-server`` options (also used by ``main``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    parser.add_argument("--clock", help="replay clock, ISO 8601 (default 2022-08-02T00:00:00Z, the end of the data)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of provider requests that get a fault")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FaultConfig().kinds),
        help=f"comma-separated fault kinds from {','.join(FAULT_KINDS)} (default: all but slow)",
    )
    parser.add_argument("--slow-seconds", type=float, default=6.0, help="delay of the 'slow' fault (default 6)")
    parser.add_argument("--down", default="", help="providers that answer 503 to everything, e.g. binance,okx")
    parser.add_argument("--geo-blocked", default="", help="providers that answer 451 (restricted location)")
    parser.add_argument(
        "--require-keys", default="", help="providers that answer 401 to requests without their API key"
    )
    parser.add_argument(
        "--shed",
        action="append",
        default=[],
        metavar="PROVIDER:SHARE",
        help="answer that share of a provider's requests with 429, e.g. gdelt:0.3; repeatable",
    )
    parser.add_argument(
        "--live-like",
        action="store_true",
        help="the providers as in late 2026: 5%% faults, key-only providers demand a key, GDELT sheds load",
    )
    parser.add_argument("--down-days", default="", help="UTC days (YYYY-MM-DD, comma-separated) with no price data")
    parser.add_argument(
        "--corrupt",
        action="append",
        default=[],
        metavar="PROVIDER[:SYMBOL]:KIND[,KIND]",
        help=(
            f"corrupt a provider's price bodies (of one symbol only: okx:ETH:nan_close), kinds from "
            f"{','.join(CORRUPTIONS)}; repeatable"
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the deterministic fault stream")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def faults_from_args(args: argparse.Namespace) -> FaultConfig:
    corrupt: dict[str, list[str]] = {}
    for spec in args.corrupt:
        target, sep, kinds = spec.rpartition(":")
        if not sep or not target or not kinds:
            raise ConfigError(
                f"--corrupt {spec!r}: expected PROVIDER[:SYMBOL]:KIND[,KIND], e.g. binance:gap,duplicates or "
                "okx:ETH:nan_close"
            )
        corrupt.setdefault(target, []).extend(kinds.split(","))
    shed: dict[str, Any] = {}
    for spec in args.shed:
        provider, sep, share = spec.partition(":")
        if not sep or not share:
            raise ConfigError(f"--shed {spec!r}: expected PROVIDER:SHARE, e.g. gdelt:0.3")
        shed[provider] = share
    base = FaultConfig.live_like(args.seed) if args.live_like else FaultConfig(seed=args.seed)
    return FaultConfig(
        rate=args.fault_rate or base.rate,
        kinds=_names(args.fault_kinds),
        slow_seconds=args.slow_seconds,
        down=_names(args.down),
        down_days=_names(args.down_days),
        corrupt=corrupt,
        seed=args.seed,
        geo_blocked=_names(args.geo_blocked),
        require_keys=_names(args.require_keys) or base.require_keys,
        shed_load=shed or base.shed_load,
    )


def serve(
    port: int = DEFAULT_PORT,
    *,
    host: str = "127.0.0.1",
    faults: FaultConfig | None = None,
    clock: datetime | str | None = None,
    log_requests: bool = False,
    stop_event: threading.Event | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the replay server until SIGINT/SIGTERM (or ``stop_event``), printing its URL and ``export`` lines."""
    out = out or sys.stdout
    stop = stop_event or threading.Event()
    server = ReplayServer(
        host, port, faults, parse_clock(clock) if clock is not None else None, log_requests=log_requests
    )
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port", file=sys.stderr)
        return 1
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        print(f"Replay server listening on {server.url} (clock {server.clock.isoformat()})", file=out)
        print("Point the pipeline at it with:", file=out)
        for name, value in server.env().items():
            print(f"export {name}={shlex.quote(value)}", file=out)
        print("Press Ctrl+C to stop.", file=out, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("Replay server stopped.", file=out, flush=True)
    return 0


def main(argv: list[str] | None = None, *, stop_event: threading.Event | None = None) -> int:
    """``crypto-assets replay-server [--port P] [--fault-rate R] [--down binance,...] ...``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="crypto-assets replay-server",
        description="Serve the bundled recorded market data and news over HTTP in each provider's API format.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, stop_event=stop_event)


def run(args: argparse.Namespace, *, stop_event: threading.Event | None = None) -> int:
    """Run from parsed ``add_arguments`` options; a bad option prints the reason and returns 2."""
    try:
        faults = faults_from_args(args)
        clock = parse_clock(args.clock) if args.clock else None
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(
        args.port, host=args.host, faults=faults, clock=clock, log_requests=args.verbose, stop_event=stop_event
    )


__all__ = [
    "BUNDLED_SYMBOLS",
    "DEFAULT_CLOCK",
    "DEFAULT_PORT",
    "ReplayServer",
    "add_arguments",
    "main",
    "run",
    "serve",
]

if __name__ == "__main__":
    sys.exit(main())
