"""The cache store contract: string values with optional expiry, atomic where it matters,
plus owner locks and sliding-window hit counters shared by every process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from qctl.clock import Clock

LOCK_CAP_SECONDS = 86_400
"""No lock lives longer: a crashed owner can never wedge a key forever."""

FIRST_PAUSE = 0.01
LONGEST_PAUSE = 0.25


@dataclass(frozen=True, slots=True)
class Hit:
    allowed: bool
    """The hit was counted (it fits under the limit)."""
    remaining: int
    """Hits still allowed in the current window after this one."""
    retry_after: float
    """Seconds until one more hit would be allowed (0.0 while `remaining` > 0)."""


def lock_seconds(ttl: float | None) -> float:
    """A lock's lifetime: `ttl`, or the cap when it is missing, not positive or longer than the cap."""
    if ttl is None or not ttl > 0 or ttl > LOCK_CAP_SECONDS:
        return float(LOCK_CAP_SECONDS)
    return ttl


def keep_trying(attempt: Callable[[], bool], timeout: float, clock: Clock) -> bool:
    """Call `attempt` until it returns True or `timeout` seconds passed, pausing a little longer each time."""
    deadline = clock.monotonic() + max(0.0, timeout)
    pause = FIRST_PAUSE
    while not attempt():
        left = deadline - clock.monotonic()
        if left <= 0:
            return False
        clock.sleep(min(pause, left))
        pause = min(pause * 1.5, LONGEST_PAUSE)
    return True


class CacheStore(Protocol):
    def get(self, key: str) -> str | None:
        """The value, or None when missing or expired."""

    def many(self, keys: Sequence[str]) -> list[str | None]:
        """The values of `keys`, in order (None for a missing or expired one), in one round trip."""

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

    def acquire(self, key: str, owner: str, ttl: float | None) -> bool:
        """Take the lock `key` for `owner` for `ttl` seconds (capped at LOCK_CAP_SECONDS; None/0 = the cap).

        True when taken: it was free, expired, or already held by the same owner (then its expiry is renewed)."""

    def block(self, key: str, owner: str, ttl: float | None, timeout: float) -> bool:
        """acquire(), retried with a short growing sleep (through the store's clock) until `timeout` seconds passed."""

    def release(self, key: str, owner: str) -> bool:
        """Drop the lock only if `owner` holds it (compare-and-delete); True when it did."""

    def force_release(self, key: str) -> bool:
        """Drop the lock whoever holds it; True when there was one."""

    def owner(self, key: str) -> str | None:
        """Who holds the live lock, or None."""

    def hit(self, key: str, limit: int, period: float) -> Hit:
        """One atomic check-and-count against `limit` hits per `period` seconds (a sliding window).

        A key is meant for one (limit, period) pair; see qctl.cache.limits for the window."""

    def reset_hits(self, key: str) -> None:
        """Forget a limiter key's hits (ThrottlesExceptions clears on success)."""

    def hits(self, key: str, period: float) -> int:
        """How many hits are counted in the window ending now (read only; for tests and status)."""

    def close(self) -> None: ...
