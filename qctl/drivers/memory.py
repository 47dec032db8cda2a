"""The memory driver (`driver = "memory"`): queues in this process's memory, for tests only.

Everything lives in the driver object, so a runtime's connection holds its own queues and
nothing is shared with another process (a `qctl work` in another process sees none of it).
It keeps the contract of the other drivers: FIFO per queue, delays, leases that lapse after
`retry_after`, fenced delete/release/renew, and a chain's next link pushed with the delete.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import ConnectionConfig
from qctl.drivers.base import Cleared, QueueSizes


@dataclass
class _Entry:
    id: int
    queue: str
    raw: bytes
    available_at: float
    order: int
    attempts: int = 0
    reserved_until: float | None = None
    lease: int = 0
    """Bumped on every reservation: a stale holder's token no longer matches."""


class MemoryDriver:
    def __init__(self, config: ConnectionConfig, clock: Clock = SYSTEM_CLOCK) -> None:
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after = config.retry_after
        self.clock = clock
        self._entries: dict[int, _Entry] = {}
        self._ids = itertools.count(1)
        self._order = itertools.count(1)
        self._mutex = threading.Lock()

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        self.bulk([(payload, queue, delay)])

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        with self._mutex:
            self._add(items)

    def _add(self, items: Sequence[tuple[str, str, float]]) -> None:
        now = self.clock.time()
        for payload, queue, delay in items:
            entry_id = next(self._ids)
            self._entries[entry_id] = _Entry(entry_id, queue, payload.encode("utf-8"), now + max(0.0, delay or 0),
                                             next(self._order))

    def pop(self, queues: Sequence[str]) -> MemoryJob | None:
        with self._mutex:
            return self._reserve(queues)

    def pop_after(self, finished: MemoryJob | None, queues: Sequence[str]) -> MemoryJob | None:
        with self._mutex:
            if finished is not None:
                self._delete(finished)
            return self._reserve(queues)

    def _reserve(self, queues: Sequence[str]) -> MemoryJob | None:
        now = self.clock.time()
        for queue in queues:
            ready = [e for e in self._entries.values() if e.queue == queue and self._is_available(e, now)]
            if not ready:
                continue
            entry = min(ready, key=lambda e: e.order)
            reclaimed = entry.reserved_until is not None
            entry.attempts += 1
            entry.lease += 1
            entry.reserved_until = now + self.retry_after if self.retry_after else float("inf")
            return MemoryJob(self, entry.id, entry.lease, self.connection_name, queue, entry.raw, entry.attempts,
                             reclaimed)
        return None

    @staticmethod
    def _is_available(entry: _Entry, now: float) -> bool:
        if entry.reserved_until is not None:
            return entry.reserved_until <= now
        return entry.available_at <= now

    def _held(self, job: MemoryJob) -> _Entry | None:
        entry = self._entries.get(job.entry_id)
        if entry is None or entry.lease != job.lease or entry.reserved_until is None:
            return None
        if entry.reserved_until <= self.clock.time():
            return None  # the lease lapsed: another pop may take it over at any moment
        return entry

    def _delete(self, job: MemoryJob) -> bool:
        entry = self._entries.get(job.entry_id)
        if entry is None or entry.lease != job.lease:
            return False
        del self._entries[job.entry_id]
        return True

    def delete(self, job: MemoryJob) -> bool:
        with self._mutex:
            return self._delete(job)

    def release(self, job: MemoryJob, delay: float) -> bool:
        with self._mutex:
            entry = self._held(job)
            if entry is None:
                return False
            entry.reserved_until = None
            entry.available_at = self.clock.time() + max(0.0, delay)
            entry.order = next(self._order)  # behind the jobs already waiting
            return True

    def renew(self, job: MemoryJob) -> bool:
        with self._mutex:
            entry = self._held(job)
            if entry is None:
                return False
            entry.reserved_until = self.clock.time() + self.retry_after if self.retry_after else float("inf")
            return True

    def delete_and_push(self, job: MemoryJob, items: Sequence[tuple[str, str, float]]) -> bool:
        with self._mutex:
            if not self._delete(job):
                return False
            self._add(items)
            return True

    def queues(self) -> list[str]:
        """The queues holding jobs now (ready, delayed or reserved), in the order they were first used."""
        with self._mutex:
            entries = sorted(self._entries.values(), key=lambda e: e.id)
            return list(dict.fromkeys(e.queue for e in entries))

    def size(self, queue: str) -> int:
        with self._mutex:
            return sum(1 for e in self._entries.values() if e.queue == queue)

    def sizes(self, queue: str) -> QueueSizes:
        now = self.clock.time()
        with self._mutex:
            entries = [e for e in self._entries.values() if e.queue == queue]
        ready = [e for e in entries if self._is_available(e, now)]
        delayed = sum(1 for e in entries if e.reserved_until is None and e.available_at > now)
        waiting = [now - e.available_at for e in ready if e.reserved_until is None]
        return QueueSizes(queue, len(ready), delayed, len(entries) - len(ready) - delayed,
                          max(0.0, max(waiting)) if waiting else None)

    def queues_with_jobs(self, limit: int) -> list[str]:
        return sorted(self.queues())[:limit]

    def clear_returning(self, queue: str, marker: bytes) -> Cleared:
        sizes = self.sizes(queue)
        with self._mutex:
            gone = [e for e in self._entries.values() if e.queue == queue]
            for entry in gone:
                del self._entries[entry.id]
        return Cleared(sizes.ready, sizes.delayed, sizes.reserved, [e.raw for e in gone if marker in e.raw])

    def clear(self, queue: str) -> int:
        with self._mutex:
            gone = [i for i, e in self._entries.items() if e.queue == queue]
            for entry_id in gone:
                del self._entries[entry_id]
            return len(gone)

    def close(self) -> None:
        return None


@dataclass
class MemoryJob:
    driver: MemoryDriver
    entry_id: int
    lease: int
    connection_name: str
    queue: str
    raw: bytes
    attempts: int
    reclaimed: bool

    @property
    def key(self) -> str:
        return str(self.entry_id)

    def delete(self) -> bool:
        return self.driver.delete(self)

    def release(self, delay: float) -> bool:
        return self.driver.release(self, delay)

    def renew(self) -> bool:
        return self.driver.renew(self)

    def delete_and_push(self, items: Sequence[tuple[str, str, float]]) -> bool:
        return self.driver.delete_and_push(self, items)
