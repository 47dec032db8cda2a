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

    def stalls(self, uuid: str) -> int:
        """Workers that died holding the job so far (0 when none, or when it cannot be read)."""

    def note_hard_timeout(self, uuid: str) -> None:
        """The hard timeout ended a worker running this job (its next reservation is no stall)."""

    def took_hard_timeout(self, uuid: str) -> bool:
        """Whether that was noted; the note is used up."""

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

    def stalls(self, uuid: str) -> int:
        try:
            found = self.cache.get(keys.job_stalls(uuid))
        except DriverError as exc:
            self._note_down(exc)
            return 0
        return int(found) if found is not None and found.strip().isdigit() else 0

    def note_hard_timeout(self, uuid: str) -> None:
        try:
            self.cache.put(keys.job_hard_timeout(uuid), "1", ttl=COUNTER_TTL_SECONDS)
        except DriverError as exc:
            self._note_down(exc)

    def took_hard_timeout(self, uuid: str) -> bool:
        try:
            return self.cache.forget(keys.job_hard_timeout(uuid))
        except DriverError as exc:
            self._note_down(exc)
            return False

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
