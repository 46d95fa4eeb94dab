"""Reading the test fixtures: one folder per provider (``fixtures/providers/<name>/``, each with a README citing
every file's source), the shared bar and news slices (``fixtures/slices/``) and the real BTC/ETH hourly bars
(``fixtures/prices_btc_eth_1h_2022-05-04_2022-08-01.csv.gz``, provenance in fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

FIXTURES = Path(__file__).parent / "fixtures"
PROVIDER_FIXTURES = FIXTURES / "providers"
SLICES = FIXTURES / "slices"
REAL_PRICES = FIXTURES / "prices_btc_eth_1h_2022-05-04_2022-08-01.csv.gz"


def provider_fixture(name: str, file: str, *, raw: bool = False) -> Any:
    """A provider's fixture file: parsed JSON for ``.json`` files, text for the others (or with ``raw=True``)."""
    text = (PROVIDER_FIXTURES / name / file).read_text(encoding="utf-8")
    return json.loads(text) if file.endswith(".json") and not raw else text


# CryptoCompare's recorded error envelopes (HTTP 200 with Response "Error"), one per kind of mistake.
CC_ERRORS = [
    provider_fixture("cryptocompare", f"error_{name}_http200-recorded.json")
    for name in ("path-does-not-exist", "fsym-required", "auth-key-needed")
]


def load_real_prices(provider: str | None = "binance") -> pd.DataFrame:
    """The real BTC and ETH hourly bars (2,160 each) in the prices frame's columns, served by ``provider`` (Binance,
    where they were recorded); ``provider=None`` leaves the provider column out."""
    df = pd.read_csv(REAL_PRICES)
    df["ts"] = pd.to_datetime(df.pop("open_time_ms"), unit="ms", utc=True)
    df = df[["symbol", "ts", "open", "high", "low", "close", "volume"]]
    return df if provider is None else df.assign(provider=provider)
