"""A cache store in a dict, for tests (`[cache] driver = "memory"`): process-local, gone with the process.

Atomic under one lock, so threads of one process see the same guarantees the shared stores give
across processes; nothing is shared with any other process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from qctl.cache import limits
from qctl.cache.base import Hit, keep_trying, lock_seconds
from qctl.clock import SYSTEM_CLOCK, Clock


class MemoryCacheStore:
    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._values: dict[str, tuple[str, float | None]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._hits: dict[str, limits.Counts] = {}
        self._mutex = threading.Lock()

    def _live(self, key: str) -> str | None:
        found = self._values.get(key)
        if found is None:
            return None
        value, expires = found
        if expires is not None and expires <= self.clock.time():
            del self._values[key]
            return None
        return value

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock.time() + ttl

    def get(self, key: str) -> str | None:
        with self._mutex:
            return self._live(key)

    def many(self, keys: Sequence[str]) -> list[str | None]:
        with self._mutex:
            return [self._live(key) for key in keys]

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._mutex:
            self._values[key] = (value, self._expiry(ttl))

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        with self._mutex:
            if self._live(key) is not None:
                return False
            self._values[key] = (value, self._expiry(ttl))
            return True

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        with self._mutex:
            current = self._live(key)
            if current is None or not current.lstrip("-").isdigit():
                self._values[key] = (str(by), self._expiry(ttl))
                return by
            self._values[key] = (str(int(current) + by), self._values[key][1])
            return int(current) + by

    def forget(self, key: str) -> bool:
        with self._mutex:
            return self._values.pop(key, None) is not None

    def items(self, prefix: str) -> dict[str, str]:
        with self._mutex:
            found = {key: self._live(key) for key in list(self._values) if key.startswith(prefix)}
            return {key: value for key, value in found.items() if value is not None}

    # --- locks ---------------------------------------------------------------------------

    def _lock_owner(self, key: str) -> str | None:
        held = self._locks.get(key)
        if held is None or held[1] <= self.clock.time():
            return None
        return held[0]

    def acquire(self, key: str, owner: str, ttl: float | None) -> bool:
        with self._mutex:
            holder = self._lock_owner(key)
            if holder is not None and holder != owner:
                return False
            self._locks[key] = (owner, self.clock.time() + lock_seconds(ttl))
            return True

    def block(self, key: str, owner: str, ttl: float | None, timeout: float) -> bool:
        return keep_trying(lambda: self.acquire(key, owner, ttl), timeout, self.clock)

    def release(self, key: str, owner: str) -> bool:
        with self._mutex:
            if self._lock_owner(key) != owner:
                return False
            del self._locks[key]
            return True

    def force_release(self, key: str) -> bool:
        with self._mutex:
            held = self._lock_owner(key) is not None
            self._locks.pop(key, None)
            return held

    def owner(self, key: str) -> str | None:
        with self._mutex:
            return self._lock_owner(key)

    # --- rate limits (see qctl.cache.limits) ------------------------------------------------

    def hit(self, key: str, limit: int, period: float) -> Hit:
        limits.check_window(limit, period)
        with self._mutex:
            hit, counts = limits.count_hit(self._hits.get(key, {}), self.clock.time(), limit, period)
            if hit.allowed:
                self._hits[key] = counts
            return hit

    def reset_hits(self, key: str) -> None:
        with self._mutex:
            self._hits.pop(key, None)

    def hits(self, key: str, period: float) -> int:
        limits.check_period(period)
        with self._mutex:
            return limits.counted(self._hits.get(key, {}), self.clock.time(), period)

    def close(self) -> None:
        return None
