"""What `qctl status` shows: per connection and queue the jobs by state, failed jobs and workers;
then the workers (from their heartbeats) and the batches in progress.

Everything is read inside `reading_only()`: a table or key that does not exist reads as empty and
is never created. Sizes come from counts (`InspectsQueues`), never from reading payloads. A store
that cannot be reached becomes one problem line; the rest is still shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from qctl.db.reading import TableMissingError, reading_only
from qctl.drivers.base import InspectsQueues, QueueSizes
from qctl.drivers.names import check_queue_name
from qctl.errors import DriverError, UsageError
from qctl.failed.base import CountsByQueue, FailedCounts
from qctl.worker.heartbeat import WorkerRecord
from qctl.worker.registry import live_records

if TYPE_CHECKING:
    from qctl.bus.batch import Batch
    from qctl.config import Config
    from qctl.runtime import Runtime

INSPECTABLE = ("database", "redis", "memory")
QUEUES_PER_CONNECTION = 100
BATCHES_SHOWN = 20
HOUR_OF_MINUTES = 61
"""The current minute and the sixty before it: the minute buckets a window of an hour overlaps."""
PerMinute = dict[tuple[str, str], list[int]]
"""Jobs processed per (connection, queue) in each minute, oldest first, the current minute last."""
T = TypeVar("T")


@dataclass(frozen=True)
class QueueStatus:
    connection: str
    sizes: QueueSizes
    failed: FailedCounts
    """Failed jobs the failed store holds for this connection and queue (failed for good)."""
    workers: int
    """Live workers whose heartbeat says they serve this connection and queue."""
    processed: Throughput | None = None
    """Jobs processed, from the workers' metrics; None when metrics are off."""

    @property
    def queue(self) -> str:
        return self.sizes.queue


@dataclass(frozen=True)
class Throughput:
    last_minute: int = 0
    last_hour: int = 0


@dataclass
class Status:
    queues: list[QueueStatus] = field(default_factory=list)
    workers: list[WorkerRecord] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per store that could not be read."""


def connections_to_show(config: Config, names: Sequence[str]) -> list[str]:
    """The named connections (each must exist and hold queues), else the default one and every
    connection the config file declares that holds queues (not sync or null)."""
    for name in names:
        driver = config.connection(name).driver  # an unknown name: ConfigError, exit 2
        if driver not in INSPECTABLE:
            raise UsageError(f"connection {name!r}: a {driver} connection holds no queue to inspect")
    if names:
        return list(dict.fromkeys(names))
    wanted = dict.fromkeys([config.default, *config.declared])
    return [name for name in wanted if config.connection(name).driver in INSPECTABLE]


def gather(runtime: Runtime, names: Sequence[str] = (), queues: Sequence[str] = (),
           per_minute: Callable[[], PerMinute] | None = None) -> Status:
    """The whole status, read-only; `queues` (if any) replaces the queues found for every connection;
    `per_minute` (if given) supplies the jobs processed per minute (HOUR_OF_MINUTES of them) instead
    of reading the workers' rows (a live view reads them less often)."""
    status = Status()
    connections = connections_to_show(runtime.config, names)
    for name in connections:
        for queue in queues:
            check_queue_name(queue, runtime.config.connection(name).driver, "--queue")
    with reading_only():
        status.workers = read_noting(status, "workers (cache store)", lambda: live_records(runtime.cache), [])
        failed: dict[tuple[str, str], FailedCounts] = read_noting(status, "failed-job store", lambda: _failed_counts(runtime), {})
        processed = read_noting(status, "job metrics (cache store)", lambda: _processed(runtime, per_minute), None)
        for name in connections:
            def read(name: str = name) -> list[QueueStatus]:
                return _queues_of(runtime, name, queues, status.workers, failed, processed)

            status.queues += read_noting(status, f"connection {name!r}", read, [])
        status.batches = read_noting(status, "batch store", lambda: runtime.batches.recent(BATCHES_SHOWN, unfinished=True), [])
    return status


def _queues_of(runtime: Runtime, name: str, given: Sequence[str], workers: list[WorkerRecord],
               failed: dict[tuple[str, str], FailedCounts],
               processed: dict[tuple[str, str], Throughput] | None) -> list[QueueStatus]:
    driver = runtime.connections.get(name)
    assert isinstance(driver, InspectsQueues), f"{name}: its driver cannot count jobs by state"
    serving = [w for w in workers if w.connection == name]
    if given:
        queues = list(dict.fromkeys(given))
    else:
        found = [driver.default_queue]
        found += [queue for worker in serving for queue in worker.queues]
        found += driver.queues_with_jobs(QUEUES_PER_CONNECTION)
        found += sorted(queue for connection, queue in failed if connection == name)
        queues = list(dict.fromkeys(found))
    return [
        QueueStatus(name, driver.sizes(queue), failed.get((name, queue), FailedCounts()),
                    sum(1 for worker in serving if queue in worker.queues),
                    None if processed is None else processed.get((name, queue), Throughput()))
        for queue in queues
    ]


def _processed(runtime: Runtime, per_minute: Callable[[], PerMinute] | None) -> dict[tuple[str, str], Throughput] | None:
    """Jobs processed per (connection, queue) in the last minute and hour: the minute buckets a
    window of 60 s and of 3600 s overlaps, as `qctl metrics --since` counts them."""
    from qctl.monitoring.metrics import processed_per_minute

    if not runtime.config.metrics.enabled:
        return None
    counts = per_minute() if per_minute is not None else processed_per_minute(runtime.cache, HOUR_OF_MINUTES, time.time())
    return {key: Throughput(sum(minutes[-2:]), sum(minutes)) for key, minutes in counts.items()}


def _failed_counts(runtime: Runtime) -> dict[tuple[str, str], FailedCounts]:
    store = runtime.failed_store
    return store.count_by_queue() if isinstance(store, CountsByQueue) else {}


def read_noting(status: Status, what: str, read: Callable[[], T], empty: T) -> T:
    """What `read` found; a table that is not there is empty, a store that is down one problem line."""
    try:
        return read()
    except TableMissingError:
        return empty
    except DriverError as exc:
        status.problems.append(f"{what}: {exc}")
        return empty


def queue_row(item: QueueStatus) -> dict[str, Any]:
    sizes = item.sizes
    return {
        "type": "queue", "connection": item.connection, "queue": item.queue, "ready": sizes.ready,
        "delayed": sizes.delayed, "reserved": sizes.reserved, "size": sizes.size, "failed": item.failed.total,
        "failed_last_hour": item.failed.last_hour, "failed_last_minute": item.failed.last_minute,
        "oldest_wait_seconds": None if sizes.oldest_wait is None else round(sizes.oldest_wait, 1),
        "processed_last_minute": item.processed.last_minute if item.processed else None,
        "processed_last_hour": item.processed.last_hour if item.processed else None,
        "workers": item.workers,
    }
