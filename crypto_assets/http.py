"""Shared HTTP machinery of every provider client: retries, rate limiting, circuit breaking, stats.

Plain Python (no Dagster), so clients are testable against a local HTTP server. Rate limiters and
circuit breakers live in module-level registries keyed by provider name: every ``HttpClient`` of a
provider in this process shares them, so parallel partitions cannot together exceed a provider's budget
or keep hammering a provider that is down.

Secrets: query parameters named in ``secret_params`` (plus common names such as ``api_key``) and the
values of credential headers are scrubbed from every error message and log line, and errors are raised
outside ``except`` blocks so no chained exception can carry an unredacted URL.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from crypto_assets.errors import ProviderError

log = logging.getLogger("crypto_assets.http")

USER_AGENT = "crypto_assets/0.1 (+https://github.com/; python-requests)"

# Query parameters always treated as secret, whatever a client declares.
DEFAULT_SECRET_PARAMS: frozenset[str] = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "secret", "signature", "password"}
)
# Header names whose values are credentials.
SECRET_HEADERS: frozenset[str] = frozenset({"authorization", "x-api-key", "x-mbx-apikey", "api-key", "apikey"})

RETRYABLE_STATUS: frozenset[int] = frozenset({418, 429})
EXCERPT_CHARS = 80


class HttpStatusError(ProviderError):
    """A non-retryable HTTP status (4xx other than 429/418); ``body`` lets clients map e.g. unknown symbols."""

    def __init__(self, provider: str, url: str, cause: str, *, status: int, body: str) -> None:
        super().__init__(provider, url, cause, retryable=False, status=status)
        self.body = body

    def json_body(self) -> Any:
        """The error body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# --------------------------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """Token bucket (``rate`` requests per second, ``burst`` tokens) plus an optional pause-until time.

    Callers pass their own clock and sleep, so tests can drive it with a fake clock.
    """

    def __init__(self, rate_per_second: float, burst: float = 1.0) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self.rate = float(rate_per_second)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated: float | None = None
        self._paused_until: float | None = None
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Take one token and return how long the caller must wait before sending (0 when none)."""
        with self._lock:
            if self._updated is None:
                self._updated = now
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            if self._paused_until is not None:
                wait = max(wait, self._paused_until - now)
                if self._paused_until <= now:
                    self._paused_until = None
            return wait

    def pause_until(self, until: float) -> None:
        """Hold every request of this provider until the clock reaches ``until`` (e.g. weight budget spent)."""
        with self._lock:
            if self._paused_until is None or until > self._paused_until:
                self._paused_until = until


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter(provider: str, rate_per_second: float, burst: float = 1.0) -> RateLimiter:
    """The process-wide limiter of ``provider``; when clients disagree on rate or burst, the strictest wins."""
    with _limiters_lock:
        limiter = _limiters.get(provider)
        if limiter is None:
            limiter = _limiters[provider] = RateLimiter(rate_per_second, burst)
        else:
            limiter.rate = min(limiter.rate, float(rate_per_second))
            limiter.burst = min(limiter.burst, float(burst))
        return limiter


def unlimited() -> RateLimiter:
    """A limiter of one client alone that never makes it wait (``pause_until`` still holds it)."""
    return RateLimiter(1e12, burst=1e12)


def reset_rate_limiters() -> None:
    with _limiters_lock:
        _limiters.clear()


# --------------------------------------------------------------------------------------------- circuit breaker

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failed calls; after ``cooldown`` s lets one probe call through.

    Only failures that say the provider is unwell count (retryable errors that outlived their retries);
    a definite answer such as "unknown symbol" or HTTP 404 proves the provider is up and counts as success.
    """

    def __init__(self, threshold: int = 5, cooldown: float = 60.0) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.consecutive_failures = 0
        self.last_failure = ""  # the redacted cause of the latest failed call: shown while the circuit is open
        self._state = CLOSED
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        return self._state

    def retry_after(self, now: float) -> float:
        """Seconds until an open breaker admits a probe (0 when closed or due)."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - now)

    def admit(self, now: float) -> tuple[bool, bool]:
        """Return (allowed, is_probe) for a call starting now."""
        with self._lock:
            if self._state == CLOSED:
                return True, False
            if self._state == OPEN and now >= self._opened_at + self.cooldown:
                self._state = HALF_OPEN
                self._probe_in_flight = False
            if self._state == HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True, True
            return False, False

    def record_success(self) -> None:
        with self._lock:
            self._state = CLOSED
            self.consecutive_failures = 0
            self._probe_in_flight = False

    def release_probe(self) -> None:
        """A probe ended without a verdict (an unexpected exception): let the next call probe."""
        with self._lock:
            self._probe_in_flight = False

    def record_failure(self, now: float, cause: str = "") -> None:
        with self._lock:
            self.consecutive_failures += 1
            self.last_failure = cause
            if self._state == HALF_OPEN or self.consecutive_failures >= self.threshold:
                self._state = OPEN
                self._opened_at = now
            self._probe_in_flight = False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def circuit_breaker(provider: str, threshold: int = 5, cooldown: float = 60.0) -> CircuitBreaker:
    """The process-wide breaker of ``provider`` (created with the given settings on first use)."""
    with _breakers_lock:
        breaker = _breakers.get(provider)
        if breaker is None:
            breaker = _breakers[provider] = CircuitBreaker(threshold, cooldown)
        return breaker


def circuit_state(provider: str) -> str:
    """``closed``, ``open`` or ``half_open`` (``closed`` for a provider not used yet)."""
    with _breakers_lock:
        breaker = _breakers.get(provider)
    return breaker.state if breaker is not None else CLOSED


def reset_circuit_breakers() -> None:
    with _breakers_lock:
        _breakers.clear()


def reset_http_state() -> None:
    """Forget every provider's breaker and limiter (tests)."""
    reset_circuit_breakers()
    reset_rate_limiters()


# --------------------------------------------------------------------------------------------- helpers


def parse_retry_after(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/garbled."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now_epoch
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def merge_stats(stats: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Sum the numeric counters of several ``HttpClient.stats()`` dicts."""
    total: dict[str, float] = {}
    for item in stats:
        for key, value in item.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def collect(getter: Callable[[Callable[[Any], None]], Any], parse: Callable[[Any], Any]) -> Any:
    """Run ``getter(validate)`` where validate parses the body, and return the parsed value.

    Parsing inside ``validate`` lets HttpClient attach the (redacted) URL to any row error.
    """
    box: list[Any] = []

    def validate(body: Any) -> None:
        box.append(parse(body))

    getter(validate)
    return box[-1]


def _excerpt(body: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


# The words of a connection error when the provider's host name does not resolve: ``crypto-assets bootstrap``
# looks for them to tell a user who is offline (or needs a proxy) what to do.
UNRESOLVED_HOST = "cannot resolve host"


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason`` and exception arguments."""
    chain: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        todo.extend(item for item in linked if isinstance(item, BaseException))
    return chain


def _connection_failure(exc: BaseException, url: str) -> str:
    """A failed connection in a few words (host name not found, connection refused, proxy, TLS), not the
    several nested repr()s requests gives; its own text, shortened, for anything else."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    chain = _exception_chain(exc)
    unresolved = any(isinstance(item, socket.gaierror) for item in chain)
    refused = any(isinstance(item, ConnectionRefusedError) for item in chain)
    if isinstance(exc, requests.exceptions.ProxyError):  # first: the names and refusals below are the proxy's
        why = "its host name does not resolve" if unresolved else "it refused the connection" if refused else None
        return f"the proxy (HTTPS_PROXY/HTTP_PROXY) failed: {why or _excerpt(str(exc), 160)}"
    if unresolved:
        return f"{UNRESOLVED_HOST} {host} (DNS lookup failed)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake with {host} failed: {_excerpt(str(exc), 160)}"
    if refused:
        return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)} refused the connection"
    return f"{type(exc).__name__}: {_excerpt(str(exc), 200)}"


def _looks_like_html(body: bytes, content_type: str) -> bool:
    """Judged by the body (some APIs send JSON labelled text/html); the header only confirms markup."""
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return True
    return head.startswith(b"<") and "html" in content_type.lower()


def _decode_text(response: requests.Response, body: bytes) -> str:
    """Text in the declared charset, else UTF-8 (requests would guess ISO-8859-1 for text/* without charset)."""
    charset = None
    if "charset=" in response.headers.get("Content-Type", "").lower():
        charset = response.encoding
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------- client


class _Attempt:
    """Outcome of one HTTP attempt: either a value or a failure reason (and whether to retry)."""

    __slots__ = ("body", "exc_cls", "network", "reason", "retry_after", "retryable", "status", "value")

    def __init__(
        self,
        *,
        value: Any = None,
        reason: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        exc_cls: type[ProviderError] = ProviderError,
        body: str = "",
        status: int | None = None,
        network: bool = False,
    ) -> None:
        self.status = status
        self.network = network
        self.value = value
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.exc_cls = exc_cls
        self.body = body  # an HttpStatusError's body


class HttpClient:
    """One provider's HTTP session with retries, backoff, rate limit and circuit breaker.

    ``rate_per_second``/``burst``: the provider's token bucket, shared by every client of the provider in
    the process; ``rate_per_second=None`` sends without client-side limit (only for servers you run
    yourself, such as the replay server: ``CRYPTO_ASSETS_RATE_LIMITS=off``).

    ``backoff_base``/``backoff_max``/``backoff_floor``: waits between attempts without ``Retry-After`` grow from
    ``backoff_base`` doubling up to ``backoff_max``, fully jittered; with a floor, never shorter than it.

    ``weight_header``/``weight_budget``: a response header reporting the weight used in the current
    minute (Binance ``x-mbx-used-weight-1m``); once it reaches the budget, every client of the
    provider waits for the next wall-clock minute.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        rate_per_second: float | None,
        burst: float = 1.0,
        timeout: tuple[float, float] = (5, 20),
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        backoff_floor: float = 0.0,
        max_retry_after: float = 60.0,
        secret_params: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        headers: Mapping[str, str] | None = None,
        weight_header: str | None = None,
        weight_budget: float | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 60.0,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.backoff_floor = backoff_floor
        self.max_retry_after = max_retry_after
        self.secret_params = frozenset(p.lower() for p in secret_params) | DEFAULT_SECRET_PARAMS
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()
        self.weight_header = weight_header
        self.weight_budget = weight_budget
        self.limiter = unlimited() if rate_per_second is None else rate_limiter(provider, rate_per_second, burst)
        # ``breaker``: a private one (the pre-flight probes must not open the circuit the run will use).
        self.breaker = breaker or circuit_breaker(provider, breaker_threshold, breaker_cooldown)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._secret_values: set[str] = set()
        if headers:
            for name, value in headers.items():
                self.session.headers[name] = value
                if name.lower() in SECRET_HEADERS:
                    self._add_secret(value)
        self._secret_param_re = re.compile(
            r"(?i)([?&;](?:" + "|".join(re.escape(p) for p in sorted(self.secret_params)) + r")=)[^&#\s'\"]*"
        )
        self._stats_lock = threading.Lock()
        self._stats: dict[str, float] = {
            "requests": 0,
            "retries": 0,
            "retry_wait_seconds": 0.0,
            "rate_limit_wait_seconds": 0.0,
            "failures": 0,
            "circuit_rejections": 0,
        }

    # ----------------------------------------------------------------------------------------- public API

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        validate: Callable[[Any], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` and return the parsed JSON body.

        ``validate`` sees the parsed body; it raises ProviderError (``retryable`` decides whether to try
        again) or ValueError (treated as a permanent "unexpected body" error).
        """
        return self._call(path, params, headers, expect_json=True, validate=validate)

    def get_text(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        validate: Callable[[str], None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """GET ``path`` and return the body as text (RSS); ``validate`` as for ``get_json``."""
        return self._call(path, params, headers, expect_json=False, validate=validate)

    def stats(self) -> dict[str, float]:
        with self._stats_lock:
            return dict(self._stats)

    def redact(self, text: str) -> str:
        """``text`` with secret query values and known secret strings replaced by ``***``."""
        text = self._secret_param_re.sub(r"\1***", text)
        for secret in sorted(self._secret_values, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def url_for(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The full URL (secrets included: never log it; see ``redact``)."""
        url = path if re.match(r"(?i)^https?://", path) else f"{self.base_url}/{path.lstrip('/')}"
        if params:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True) + [
                (k, str(v)) for k, v in params.items() if v is not None
            ]
            url = urlunsplit(parts._replace(query=urlencode(query)))
        return url

    def close(self) -> None:
        self.session.close()

    # ----------------------------------------------------------------------------------------- internals

    def _add_secret(self, value: str) -> None:
        value = str(value).strip()
        # "Apikey <key>" / "Bearer <token>" headers: the bare credential is a secret as well.
        _scheme, _, credential = value.partition(" ")
        for candidate in (value, credential.strip()):
            if len(candidate) >= 4:
                self._secret_values.add(candidate)

    def _bump(self, key: str, amount: float = 1) -> None:
        with self._stats_lock:
            self._stats[key] += amount

    def _call(
        self,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        *,
        expect_json: bool,
        validate: Callable[[Any], None] | None,
    ) -> Any:
        for name, value in (params or {}).items():
            if name.lower() in self.secret_params and value is not None:
                self._add_secret(str(value))
        for name, value in (headers or {}).items():
            if name.lower() in SECRET_HEADERS:
                self._add_secret(value)
        url = self.url_for(path, params)
        safe_url = self.redact(url)

        allowed, is_probe = self.breaker.admit(self._clock())
        if not allowed:
            self._bump("circuit_rejections")
            self._bump("failures")
            wait = self.breaker.retry_after(self._clock())
            last = f" (the last: {self.breaker.last_failure})" if self.breaker.last_failure else ""
            raise ProviderError(
                self.provider,
                safe_url,
                f"circuit open after {self.breaker.threshold} consecutive failed calls; "
                f"retry after {math.ceil(wait)} s{last}",
                retryable=True,
                network=True,
            )

        try:
            return self._call_admitted(url, safe_url, headers, is_probe, expect_json=expect_json, validate=validate)
        except ProviderError:
            raise
        except BaseException:
            if is_probe:
                self.breaker.release_probe()
            raise

    def _call_admitted(
        self,
        url: str,
        safe_url: str,
        headers: Mapping[str, str] | None,
        is_probe: bool,
        *,
        expect_json: bool,
        validate: Callable[[Any], None] | None,
    ) -> Any:
        attempts = 1 if is_probe else self.max_attempts
        outcome: _Attempt | None = None
        attempt = 0
        for attempt in range(1, attempts + 1):
            self._throttle()
            outcome = self._attempt(url, headers, expect_json=expect_json, validate=validate)
            if outcome.reason is None:
                self.breaker.record_success()
                return outcome.value
            if not outcome.retryable or attempt == attempts:
                break
            wait = self._backoff(attempt, outcome.retry_after)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.2f s: %s",
                self.provider,
                attempt,
                attempts,
                self.redact(outcome.reason),
                wait,
                safe_url,
            )
            self._bump("retries")
            self._bump("retry_wait_seconds", wait)
            if wait > 0:
                self._sleep(wait)

        assert outcome is not None and outcome.reason is not None
        cause = self.redact(outcome.reason)
        if outcome.retryable:
            self.breaker.record_failure(self._clock(), cause)
        else:
            # A definite answer (4xx, unknown symbol, bad row): the provider is up.
            self.breaker.record_success()
        self._bump("failures")
        if outcome.retryable:
            cause = f"{cause} after {attempt} attempt{'s' if attempt > 1 else ''}"
            if is_probe:
                cause += " (half-open probe)"
        if outcome.exc_cls is HttpStatusError:
            raise HttpStatusError(
                self.provider,
                safe_url,
                cause,
                status=outcome.status,
                body=self.redact(outcome.body),
            )
        raise outcome.exc_cls(
            self.provider, safe_url, cause, retryable=outcome.retryable, status=outcome.status, network=outcome.network
        )

    def _throttle(self) -> None:
        wait = self.limiter.reserve(self._clock())
        if wait > 0:
            self._bump("rate_limit_wait_seconds", wait)
            self._sleep(wait)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        if not self.backoff_floor:
            return self._rng.uniform(0, ceiling)  # full jitter
        # "Equal jitter" with a floor: a provider that sheds load (GDELT) is never retried after a lucky near-zero draw.
        fixed = min(ceiling, max(self.backoff_floor, ceiling / 2))
        return min(self.backoff_max, fixed + self._rng.uniform(0, ceiling - fixed))

    def _note_weight(self, response: requests.Response) -> None:
        if not self.weight_header or self.weight_budget is None:
            return
        raw = response.headers.get(self.weight_header)
        if raw is None:
            return
        try:
            used = float(raw)
        except ValueError:
            return
        if used >= self.weight_budget:
            wait = 60.0 - (self._wall_clock() % 60.0) + 0.5
            log.warning(
                "%s: request weight %s of this minute reached the budget %s; pausing %.1f s until the next minute",
                self.provider,
                raw,
                self.weight_budget,
                wait,
            )
            self.limiter.pause_until(self._clock() + wait)

    def _attempt(
        self,
        url: str,
        headers: Mapping[str, str] | None,
        *,
        expect_json: bool,
        validate: Callable[[Any], None] | None,
    ) -> _Attempt:
        self._bump("requests")
        failure: str | None = None
        retryable = False
        try:
            response = self.session.get(url, headers=dict(headers) if headers else None, timeout=self.timeout)
            body = response.content
        except requests.Timeout as exc:
            kind = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
            failure, retryable = f"{kind} timeout (limits {self.timeout[0]:g}/{self.timeout[1]:g} s)", True
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            failure, retryable = f"connection error: {_connection_failure(exc, url)}", True
        except requests.RequestException as exc:
            failure = f"request failed: {type(exc).__name__}: {_excerpt(str(exc), 200)}"
        if failure is not None:
            return _Attempt(reason=failure, retryable=retryable, network=True)

        self._note_weight(response)
        status = response.status_code
        content_type = response.headers.get("Content-Type", "")
        if status in RETRYABLE_STATUS or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now_epoch=self._wall_clock())
            what = "HTML error page" if _looks_like_html(body, content_type) else _excerpt(body)
            return _Attempt(reason=f"HTTP {status} ({what})", retryable=True, retry_after=retry_after, status=status)
        if status >= 400 or status < 200:
            text = body.decode("utf-8", errors="replace")
            return _Attempt(
                reason=f"HTTP {status}: {_excerpt(text, 200)}",
                exc_cls=HttpStatusError,
                body=text[:2000],
                status=status,
            )

        if expect_json:
            value, reason = self._parse_json(body, content_type)
            if reason is not None:
                return _Attempt(reason=reason, retryable=True)
        else:
            value = _decode_text(response, body)
        if validate is not None:
            try:
                validate(value)
            except ProviderError as exc:
                return _Attempt(reason=exc.cause, retryable=exc.retryable, exc_cls=type(exc), status=exc.status)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                return _Attempt(reason=f"unexpected body: {exc}")
        return _Attempt(value=value)

    @staticmethod
    def _parse_json(body: bytes, content_type: str) -> tuple[Any, str | None]:
        if not body.strip():
            return None, "empty body where JSON was expected"
        if _looks_like_html(body, content_type):
            return None, f"HTML page where JSON was expected (first {EXCERPT_CHARS} chars: {_excerpt(body)})"
        if body.lstrip().startswith(b"<"):
            return None, f"markup where JSON was expected (first {EXCERPT_CHARS} chars: {_excerpt(body)})"
        try:
            return json.loads(body), None
        except ValueError as exc:
            text = body.decode("utf-8", errors="replace").rstrip()
            pos = getattr(exc, "pos", 0)
            truncated = pos >= len(text) - 1 or str(exc).startswith("Unterminated string")
            kind = "truncated JSON body" if truncated else "malformed JSON body"
            return None, f"{kind} (first {EXCERPT_CHARS} chars: {_excerpt(body)})"
