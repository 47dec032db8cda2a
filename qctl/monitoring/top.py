"""What one frame of `qctl top` shows: the status (`qctl.monitoring.status.gather`), each queue's
jobs processed per minute over the last minutes, and the newest failed jobs.

Read-only like `qctl status`: a table or key that does not exist reads as empty; a store that is
down becomes one problem line and the rest of the frame is still drawn.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qctl.db.reading import reading_only
from qctl.failed.base import FailedFilter, FailedJob, job_class_of, search
from qctl.monitoring.metrics import processed_per_minute
from qctl.monitoring.status import HOUR_OF_MINUTES, PerMinute, Status, gather, read_noting

if TYPE_CHECKING:
    from qctl.runtime import Runtime

SPARK_MINUTES = 15
METRICS_EVERY_SECONDS = 10.0
FAILURES_SHOWN = 5


@dataclass(frozen=True)
class Failure:
    id: str
    job_class: str
    queue: str
    error: str
    """The first line of the stored exception."""
    failed_at: float


@dataclass
class Snapshot:
    status: Status
    taken_at: float
    per_minute: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """Jobs processed per (connection, queue) in each of the last SPARK_MINUTES minutes, oldest first."""
    failures: list[Failure] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.status.problems


class Watch:
    """Snapshots for a live view, one a second. The costly read, every worker's minute rows of the
    last hour, is done again at most every METRICS_EVERY_SECONDS (rows change once a minute);
    the rest (sizes, heartbeats, failures, batches) is read for every snapshot."""

    def __init__(self, runtime: Runtime, names: tuple[str, ...] = (), queues: tuple[str, ...] = ()) -> None:
        self.runtime, self.names, self.queues = runtime, names, queues
        self._minutes: PerMinute = {}
        self._read_at: float | None = None

    def take(self) -> Snapshot:
        status = gather(self.runtime, self.names, self.queues, per_minute=self._per_minute)
        snapshot = Snapshot(status, time.time())
        snapshot.per_minute = {key: counts[-SPARK_MINUTES:] for key, counts in self._minutes.items()}
        with reading_only():
            snapshot.failures = read_noting(status, "failed-job store", lambda: newest_failures(self.runtime), [])
        return snapshot

    def _per_minute(self) -> PerMinute:
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= METRICS_EVERY_SECONDS:
            self._minutes = processed_per_minute(self.runtime.cache, HOUR_OF_MINUTES, time.time())
            self._read_at = now
        return self._minutes


def take(runtime: Runtime, names: tuple[str, ...] = (), queues: tuple[str, ...] = ()) -> Snapshot:
    """One snapshot (`qctl top --once`)."""
    return Watch(runtime, names, queues).take()


def newest_failures(runtime: Runtime, limit: int = FAILURES_SHOWN) -> list[Failure]:
    records = search(runtime.failed_store, FailedFilter(limit=limit), job_class_of)
    return [failure_of(record) for record in records[:limit]]


def failure_of(record: FailedJob) -> Failure:
    stamp = record.failed_at if record.failed_at.tzinfo else record.failed_at.replace(tzinfo=dt.UTC)  # naive UTC, as stored
    return Failure(record.uuid, job_class_of(record.payload), record.queue, record.error_line, stamp.timestamp())
