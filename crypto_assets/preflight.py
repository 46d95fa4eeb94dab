"""Provider pre-flight: one small request per configured provider, and what its answer means for a run.

``crypto-assets providers`` prints the table; ``crypto-assets bootstrap`` runs the same probes first and refuses
to start when no price provider answers (one line per provider instead of minutes of retries ending in a
failure). Probes use the providers' own clients with a private circuit breaker and at most two attempts, so a
probe never opens the circuit the run is going to use.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from crypto_assets.config import NEWS_PROVIDERS_ENV, PRICE_PROVIDERS_ENV, Settings
from crypto_assets.errors import ProviderError
from crypto_assets.http import CircuitBreaker, HttpClient
from crypto_assets.providers import registry
from crypto_assets.providers.registry import NEWS, PRICES, ProviderSpec

OK = "ok"
NEEDS_KEY = "needs key"
GEO_BLOCKED = "geo-blocked"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate-limited"
UNREACHABLE = "unreachable"
BAD_ANSWER = "bad answer"
STATUSES = (OK, NEEDS_KEY, GEO_BLOCKED, UNAUTHORIZED, RATE_LIMITED, UNREACHABLE, BAD_ANSWER)

PROBE_TIMEOUT = (3.0, 8.0)
PROBE_ATTEMPTS = 2
_RESTRICTED_WORDS = ("restricted location", "eligibility", "not available in your country", "cloudfront")


@dataclass(frozen=True)
class ProbeResult:
    provider: str
    kind: str
    status: str
    latency_ms: int | None
    detail: str
    action: str

    @property
    def answers(self) -> bool:
        return self.status == OK


def _url_hint(spec: ProviderSpec) -> str:
    return f" or point {spec.url_env} at another host" if spec.url_env else ""


def classify(spec: ProviderSpec, kind: str, error: ProviderError, has_key: bool) -> tuple[str, str]:
    """(status, what to do) for a failed probe of ``spec``'s ``kind`` client."""
    cause = error.cause.lower()
    kind_var = PRICE_PROVIDERS_ENV if kind == PRICES else NEWS_PROVIDERS_ENV
    body = getattr(error, "body", "").lower()
    if error.status == 451 or (error.status == 403 and any(w in body or w in cause for w in _RESTRICTED_WORDS)):
        return GEO_BLOCKED, f"not served from this location: put another provider first in {kind_var}{_url_hint(spec)}"
    if error.status in (401, 403):
        if spec.key_env and has_key:
            return UNAUTHORIZED, f"the key was refused: check {spec.key_env} and its plan"
        if spec.key_env:
            return UNAUTHORIZED, f"it wants a key now: set {spec.key_env} or drop {spec.name} from {kind_var}"
        return UNAUTHORIZED, f"it refuses keyless requests now: drop {spec.name} from {kind_var}"
    if error.status in (418, 429):
        return RATE_LIMITED, "over its rate limit right now: wait a minute; runs back off and retry on their own"
    if error.network or (error.status is not None and error.status >= 500):
        return UNREACHABLE, "no answer: check the network or HTTPS_PROXY; the provider may be down (runs fail over)"
    return BAD_ANSWER, f"its answer did not parse: the API may have changed{_url_hint(spec)}"


def probe_provider(spec: ProviderSpec, kind: str, settings: Settings, keys: Mapping[str, str | None]) -> ProbeResult:
    """Probe one provider of ``kind`` with one small request."""
    config = registry.client_config(
        spec,
        urls=settings.provider_urls,
        options=settings.provider_options,
        keys=keys,
        rate_limited=settings.rate_limits,
    )
    if config is None:
        action = f"set {spec.key_env} (a paid key) to use it; it is skipped, never called, without one"
        return ProbeResult(spec.name, kind, NEEDS_KEY, None, f"{spec.key_env} is not set", action)
    http = HttpClient(
        spec.name,
        config.base_url,
        **spec.rate_limit.http_options(settings.rate_limits),
        timeout=PROBE_TIMEOUT,
        max_attempts=PROBE_ATTEMPTS,
        backoff_max=2.0,
        max_retry_after=2.0,
        breaker=CircuitBreaker(threshold=PROBE_ATTEMPTS + 1),
    )
    client = spec.client(kind, config, http=http)
    started = time.monotonic()
    try:
        detail = client.probe(dt.datetime.now(dt.UTC))
    except ProviderError as exc:
        latency = round((time.monotonic() - started) * 1000)
        status, action = classify(spec, kind, exc, config.api_key is not None)
        return ProbeResult(spec.name, kind, status, latency, exc.cause, action)
    finally:
        http.close()
    return ProbeResult(spec.name, kind, OK, round((time.monotonic() - started) * 1000), detail, "")


def probe_all(settings: Settings) -> list[ProbeResult]:
    """Probe every configured provider concurrently; results in configured order, prices first."""
    jobs = [(registry.provider(name), kind) for kind in (PRICES, NEWS) for name in settings.providers(kind)]
    # A probe's retry warnings would repeat what its result line says.
    http_log = logging.getLogger("crypto_assets.http")
    level = http_log.level
    http_log.setLevel(logging.ERROR)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(jobs)), thread_name_prefix="probe") as pool:
            futures = [pool.submit(probe_provider, spec, kind, settings, os.environ) for spec, kind in jobs]
        return [future.result() for future in futures]
    finally:
        http_log.setLevel(level)


def answering(results: list[ProbeResult], kind: str) -> list[ProbeResult]:
    return [result for result in results if result.kind == kind and result.answers]


def healthy(results: list[ProbeResult]) -> bool:
    """At least one price provider and one news provider answer."""
    return bool(answering(results, PRICES)) and bool(answering(results, NEWS))


def table(results: list[ProbeResult]) -> str:
    header = ("provider", "kind", "status", "latency", "detail / what to do")
    rows = [
        (
            r.provider,
            r.kind,
            r.status,
            "-" if r.latency_ms is None else f"{r.latency_ms} ms",
            r.detail if not r.action else f"{r.detail}; {r.action}",
        )
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(header[:4])) + "  " + header[4]]
    lines += ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows]
    return "\n".join(lines)


def as_json(results: list[ProbeResult]) -> str:
    return json.dumps([asdict(result) for result in results], indent=2)


def bootstrap_preflight(settings: Settings, echo: Callable[[str], None]) -> bool:
    """The bootstrap's pre-flight: print one line per provider; False when no price provider answers."""
    results = probe_all(settings)
    echo("providers:")
    for r in results:
        latency = "" if r.latency_ms is None else f" ({r.latency_ms} ms)"
        echo(f"  {r.kind:<6} {r.provider:<14} {r.status}{latency}: {r.detail}" + (f"; {r.action}" if r.action else ""))
    if not answering(results, PRICES):
        echo("no price provider answers: nothing was started. Fix one of the causes above, or run the offline demo")
        return False
    if not answering(results, NEWS):
        echo("  no news provider answers: prices and price features will land; sentiment will be null (not covered)")
    return True
