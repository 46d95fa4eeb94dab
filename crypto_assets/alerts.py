"""Alerts: one structured log line always, and a Slack-compatible webhook POST when configured.

Plain Python (no Dagster): the alert sensors build the message, this module delivers it. A webhook that
is down never breaks the sensor; the failure is logged.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import requests

from crypto_assets.errors import ConfigError

log = logging.getLogger("crypto_assets.alerts")

WEBHOOK_ENV = "CRYPTO_ASSETS_ALERT_WEBHOOK"


def webhook_url(env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(WEBHOOK_ENV)
    if not value:
        return None
    # A webhook URL is a secret (anyone holding it can post): say what is wrong with its shape, never the value.
    try:
        parsed = urlparse(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https"):
        what = "does not start with http:// or https://"
    elif not parsed.hostname:
        what = "has no host name after the scheme"
    elif any(ch.isspace() for ch in value):
        what = "contains whitespace"
    else:
        return value
    raise ConfigError(
        f"{WEBHOOK_ENV} is set but {what} ({len(value)} characters; the value is not shown): "
        "set it to an incoming-webhook URL such as Slack's https://hooks.slack.com/services/..., or unset it"
    )


def slack_payload(kind: str, title: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook JSON: a plain `text` fallback plus a section block listing the details."""
    lines = "\n".join(f"*{key}*: {value}" for key, value in details.items())
    text = f":rotating_light: crypto_assets {kind}: {title}"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines or "_no details_"}},
        ],
    }


def send_alert(kind: str, title: str, details: Mapping[str, Any], *, url: str | None = None) -> bool:
    """Log the alert as one JSON line; POST it to ``url`` (default: the env webhook). True if delivered."""
    record = {"alert": kind, "title": title, **{k: str(v) for k, v in details.items()}}
    log.warning(json.dumps(record, sort_keys=True))
    target = url if url is not None else webhook_url()
    if not target:
        return False
    try:
        response = requests.post(target, json=slack_payload(kind, title, details), timeout=(3, 10))
        response.raise_for_status()
    except requests.RequestException as exc:
        log.error(json.dumps({"alert_delivery_failed": kind, "error": type(exc).__name__}))
        return False
    return True
