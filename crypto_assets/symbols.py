"""Universe symbols: validation and the words that tag news (each provider's naming is in its registry entry)."""

from __future__ import annotations

import re

from crypto_assets.errors import ConfigError

DEFAULT_UNIVERSE: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP", "BNB", "ADA")
BENCHMARK_SYMBOL = "BTC"

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,15}$")

# Words that tag an article with a symbol (whole words, case-insensitive), besides the ticker itself.
# Tickers that are also common words or acronyms are matched case-sensitively (see news tagging).
COIN_NAMES: dict[str, tuple[str, ...]] = {
    "BTC": ("Bitcoin",),
    "ETH": ("Ethereum", "Ether"),
    "SOL": ("Solana",),
    "XRP": ("Ripple",),
    "BNB": ("Binance Coin",),
    "ADA": ("Cardano",),
}


def is_valid_symbol(symbol: str) -> bool:
    return bool(_SYMBOL_RE.match(symbol))


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is a well-formed universe symbol, else raise ConfigError."""
    if not is_valid_symbol(symbol):
        raise ConfigError(f"malformed symbol {symbol!r}: use an upper-case ticker of 2-15 letters or digits, e.g. BTC")
    return symbol


def parse_symbols(text: str, *, source: str = "--symbols") -> tuple[str, ...]:
    """Parse a comma-separated symbol list strictly: no lower case, no padding, no empties, no repeats."""
    parts = text.split(",")
    symbols: list[str] = []
    for part in parts:
        if part != part.strip():
            raise ConfigError(f"{source}: symbol {part!r} has surrounding spaces; write e.g. BTC,ETH")
        if part != part.upper() and is_valid_symbol(part.upper()):
            raise ConfigError(f"{source}: symbol {part!r} must be upper case ({part.upper()!r})")
        try:
            validate_symbol(part)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if part in symbols:
            raise ConfigError(f"{source}: symbol {part!r} is listed twice")
        symbols.append(part)
    return tuple(symbols)
