"""Exceptions users see. Each message says what went wrong and what to do."""


class CryptoAssetsError(Exception):
    """Base class of the project's own errors."""


class ConfigError(CryptoAssetsError, ValueError):
    """Bad user input: a flag, a date, a symbol or a ``CRYPTO_ASSETS_*`` value (CLI exit code 2)."""


class ProviderError(CryptoAssetsError):
    """A data provider could not deliver: names the provider, the URL (without secrets) and the cause."""

    def __init__(
        self,
        provider: str,
        url: str,
        cause: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        network: bool = False,
    ) -> None:
        self.provider = provider
        self.url = url
        self.cause = cause
        self.retryable = retryable
        self.status = status  # the HTTP status that ended the call, None when there was none (network, body)
        self.network = network  # no answer at all: connection refused, DNS, TLS, timeout, open circuit
        super().__init__(f"{provider}: {cause} ({url})")


class UnknownSymbolError(ProviderError):
    """The provider answered that it does not list this symbol (permanent, never retried)."""


class DataUnavailableError(CryptoAssetsError):
    """No provider could serve some (symbol, day); the message lists every provider's error."""
