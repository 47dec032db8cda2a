"""The cache store contract: string values with optional expiry, atomic where it matters."""

from __future__ import annotations

from typing import Protocol


class CacheStore(Protocol):
    def get(self, key: str) -> str | None:
        """The value, or None when missing or expired."""

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        """Set the value; `ttl` seconds until it expires (None = never)."""

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Set the value only if the key is missing or expired; atomic. True when it was set."""

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Add to an integer value (missing or expired counts as 0) and return it; atomic across processes.

        `ttl` applies when the key is created."""

    def forget(self, key: str) -> bool:
        """Delete the key; True when something was deleted."""

    def items(self, prefix: str) -> dict[str, str]:
        """Every live key starting with `prefix` and its value."""

    def close(self) -> None: ...
