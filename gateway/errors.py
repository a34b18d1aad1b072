"""Errors of the gateway layer."""

from __future__ import annotations

from drivers.errors import GatewayError

__all__ = ["ConfigError", "GatewayError", "StoreError"]


class ConfigError(GatewayError):
    """The site configuration is invalid; the message is `file:line: key: what was expected`."""

    def __init__(self, file: str, line: int | None, key: str, expected: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.expected = expected
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {expected}" if key else f"{where}: {expected}")


class StoreError(GatewayError):
    """The durable outbox could not be opened or written."""
