"""Per-job counters every worker shares through the cache: exceptions thrown and stalls survived.

Both are keyed by the job's uuid, which survives releases and redeliveries, so
the count spans every attempt on every worker. A cache that is down must never
cost a job: the count is skipped (logged once per outage) and the job simply
keeps its other limits.
"""

from __future__ import annotations

import logging
from typing import Protocol

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.errors import DriverError

log = logging.getLogger("qctl.worker")

COUNTER_TTL_SECONDS = 86_400
"""A counter lives one day after its first count (Laravel keeps job-exceptions for a day too)."""


class JobCounters(Protocol):
    def add_exception(self, uuid: str) -> int | None:
        """Count one more exception; the new total, or None when it could not be counted."""

    def add_stall(self, uuid: str) -> int | None:
        """Count one more worker that died holding the job; the new total, or None."""

    def forget(self, uuid: str) -> None:
        """Drop both counters (the job failed for good)."""


class CacheJobCounters:
    def __init__(self, cache: CacheStore) -> None:
        self.cache = cache
        self._cache_down = False

    def add_exception(self, uuid: str) -> int | None:
        return self._increment(keys.job_exceptions(uuid))

    def add_stall(self, uuid: str) -> int | None:
        return self._increment(keys.job_stalls(uuid))

    def forget(self, uuid: str) -> None:
        try:
            self.cache.forget(keys.job_exceptions(uuid))
            self.cache.forget(keys.job_stalls(uuid))
        except DriverError as exc:
            self._note_down(exc)  # the counters expire on their own

    def _increment(self, key: str) -> int | None:
        try:
            total = self.cache.increment(key, ttl=COUNTER_TTL_SECONDS)
        except DriverError as exc:
            self._note_down(exc)
            return None
        if self._cache_down:
            log.warning("cache is back; job counters are kept again")
            self._cache_down = False
        return total

    def _note_down(self, exc: DriverError) -> None:
        if not self._cache_down:
            log.warning("%s; max_exceptions and max_stalls are not counted until it is back", exc)
            self._cache_down = True
