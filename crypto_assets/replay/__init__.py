"""Offline replay of real recorded provider data: the bundled files and an HTTP server in each API's format.

Names are imported lazily so that ``python -m crypto_assets.replay.server`` runs without a double import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crypto_assets.replay.data import REPLAY_DIR, load_bundled_news, load_bundled_prices
    from crypto_assets.replay.faults import FaultConfig
    from crypto_assets.replay.server import ReplayServer, main, serve

_EXPORTS = {
    "REPLAY_DIR": "crypto_assets.replay.data",
    "load_bundled_news": "crypto_assets.replay.data",
    "load_bundled_prices": "crypto_assets.replay.data",
    "FaultConfig": "crypto_assets.replay.faults",
    "ReplayServer": "crypto_assets.replay.server",
    "main": "crypto_assets.replay.server",
    "serve": "crypto_assets.replay.server",
}

__all__ = ["REPLAY_DIR", "FaultConfig", "ReplayServer", "load_bundled_news", "load_bundled_prices", "main", "serve"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
