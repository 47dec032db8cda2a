"""A failed-job store in a list, for tests (`[failed] driver = "memory"`): process-local."""

from __future__ import annotations

import datetime as dt
import threading

from qctl.failed.base import FailedCounts, FailedJob, clean_text


def utc_now() -> dt.datetime:
    """Naive UTC, as the other stores keep failed_at (and as `qctl prune-failed` passes its cutoff)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def naive_utc(stamp: dt.datetime) -> dt.datetime:
    return stamp if stamp.tzinfo is None else stamp.astimezone(dt.UTC).replace(tzinfo=None)


class MemoryFailedJobStore:
    def __init__(self) -> None:
        self._records: dict[str, FailedJob] = {}
        self._next_id = 1
        self._mutex = threading.Lock()

    def log(self, connection: str, queue: str, payload: bytes, exception: str, uuid: str) -> str:
        with self._mutex:
            if uuid not in self._records:
                self._records[uuid] = FailedJob(self._next_id, uuid, connection, queue, bytes(payload),
                                                clean_text(exception), utc_now())
                self._next_id += 1
            return uuid

    def all(self) -> list[FailedJob]:
        with self._mutex:
            return sorted(self._records.values(), key=lambda r: r.id, reverse=True)

    def find(self, uuid: str) -> FailedJob | None:
        with self._mutex:
            return self._records.get(uuid)

    def find_by_row_ids(self, low: int, high: int) -> list[FailedJob]:
        return sorted((r for r in self.all() if low <= r.id <= high), key=lambda r: r.id)

    def forget(self, uuid: str) -> bool:
        with self._mutex:
            return self._records.pop(uuid, None) is not None

    def flush(self, hours: float | None = None) -> int:
        return self.flush_returning(hours, b"\x00")[0]

    def flush_returning(self, hours: float | None, marker: bytes) -> tuple[int, list[bytes]]:
        cutoff = None if hours is None else utc_now() - dt.timedelta(hours=hours)
        with self._mutex:
            gone = [r for r in self._records.values() if cutoff is None or r.failed_at < cutoff]
            for record in gone:
                del self._records[record.uuid]
        return len(gone), [r.payload for r in gone if marker in r.payload]

    def prune(self, before: dt.datetime) -> int:
        with self._mutex:
            gone = [u for u, r in self._records.items() if r.failed_at < naive_utc(before)]
            for uuid in gone:
                del self._records[uuid]
            return len(gone)

    def count(self) -> int:
        with self._mutex:
            return len(self._records)

    def count_by_queue(self) -> dict[tuple[str, str], FailedCounts]:
        now = utc_now()
        with self._mutex:
            records = list(self._records.values())
        counts: dict[tuple[str, str], FailedCounts] = {}
        for r in records:
            seen = counts.get((r.connection, r.queue), FailedCounts())
            age = (now - r.failed_at).total_seconds()
            counts[(r.connection, r.queue)] = FailedCounts(seen.total + 1, seen.last_hour + (age <= 3600),
                                                           seen.last_minute + (age <= 60))
        return counts
