"""Job metrics: what a worker counts per connection, queue and job class, and how it stores them.

A worker adds each settled job to in-memory totals (processed, failed, released; runtime and
wait as histograms with exact sums and maxima) and a small thread writes them to the cache
store at most once a second, and once more as the worker stops. Each write replaces that
worker's row for the current minute bucket and the current hour bucket (a put, never an
increment), so a retried write never counts twice; readers add the rows of every worker, so
several workers and hosts add up, and a restarted worker's earlier rows keep counting until
they expire (minute rows after `[metrics] minutes_kept_hours`, hour rows after `hours_kept_days`).
Wait is from the payload's pushedAt to the start of the run (a released job counts from its
first push, as Horizon measures it).
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import MetricsConfig
from qctl.errors import QctlError

log = logging.getLogger("qctl.worker")

FLUSH_SECONDS = 1.0
BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 1_800_000)
"""Upper bounds of the histogram's buckets in milliseconds; one more bucket holds the rest."""
DEFAULT_METRICS = MetricsConfig()


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    total_ms: float = 0.0
    max_ms: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, ms: float) -> None:
        self.counts[bisect.bisect_left(BOUNDS_MS, ms)] += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, share: float) -> float | None:
        """The upper bound of the bucket holding that share of the values (capped by the maximum)."""
        count = self.count
        if not count:
            return None
        rank, seen = share * count, 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return min(float(BOUNDS_MS[index]) if index < len(BOUNDS_MS) else self.max_ms, self.max_ms)
        return self.max_ms

    def to_list(self) -> list[Any]:
        return [self.counts, round(self.total_ms, 3), round(self.max_ms, 3)]

    @classmethod
    def from_list(cls, value: Any) -> Histogram:
        counts, total, top = value
        if not isinstance(counts, list) or len(counts) != len(BOUNDS_MS) + 1:
            raise ValueError("histogram of another shape")
        return cls([int(n) for n in counts], float(total), float(top))


@dataclass
class Totals:
    """One series' numbers: a (connection, queue, job class) in one bucket, or added up."""

    processed: int = 0
    failed: int = 0
    released: int = 0
    runtime: Histogram = field(default_factory=Histogram)
    wait: Histogram = field(default_factory=Histogram)

    def merge(self, other: Totals) -> None:
        self.processed += other.processed
        self.failed += other.failed
        self.released += other.released
        self.runtime.merge(other.runtime)
        self.wait.merge(other.wait)

    def to_dict(self) -> dict[str, Any]:
        return {"p": self.processed, "f": self.failed, "r": self.released, "rt": self.runtime.to_list(),
                "w": self.wait.to_list()}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Totals:
        return cls(int(value["p"]), int(value["f"]), int(value["r"]), Histogram.from_list(value["rt"]),
                   Histogram.from_list(value["w"]))


Series = tuple[str, str, str]
"""(connection, queue, job class)."""


def encode_row(series: Mapping[Series, Totals]) -> str:
    return json.dumps([[*key, totals.to_dict()] for key, totals in series.items()], separators=(",", ":"))


def decode_row(text: str) -> dict[Series, Totals]:
    """A stored row; an unreadable one (another version, damage) reads as nothing."""
    try:
        return {(str(c), str(q), str(k)): Totals.from_dict(t) for c, q, k, t in json.loads(text)}
    except (ValueError, TypeError, KeyError):
        return {}


def wait_since(pushed_at: Any, started_at: float | None) -> float | None:
    """Seconds from a payload's pushedAt (text, as stored) to `started_at`; None when either is unknown."""
    try:
        pushed = float(pushed_at) if pushed_at else None
    except (TypeError, ValueError):
        return None
    if pushed is None or started_at is None or pushed != pushed:
        return None
    return started_at - pushed


class JobMetrics(Protocol):
    def record_job(self, connection: str, running: Any, started_at: float | None) -> None:
        """Count a job the worker ran (a `qctl.worker.runner.RunningJob`) once `process` returned."""

    def flushing(self) -> Any:
        """A context manager: flushed in the background while it is open, and once more as it closes."""


class NoMetrics:
    def record_job(self, connection: str, running: Any, started_at: float | None) -> None:
        return None

    @contextmanager
    def flushing(self) -> Iterator[None]:
        yield


class CacheMetrics:
    """Totals of this worker per minute, written to the cache store with the hour they add up to.

    A job costs one append to a queue of facts; the flushing thread adds them into the minute
    buckets and adds up the hour row from those when it writes, at most once a second."""

    def __init__(self, cache: CacheStore, worker: str, options: MetricsConfig = DEFAULT_METRICS,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.cache, self.worker, self.options, self.clock = cache, worker, options, clock
        self._minutes: dict[int, dict[Series, Totals]] = {}
        """Minute buckets (minutes since the epoch) of the hours not yet written in full."""
        self._dirty: set[int] = set()
        self._pending: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def record_job(self, connection: str, running: Any, started_at: float | None) -> None:
        """The worker's hot path: the few facts are queued as they are (a deque append is thread-safe);
        the flushing thread adds them up."""
        envelope = running.envelope  # only two strings of it are kept: the payload's data may be large
        self._pending.append((connection, running.reserved.queue, envelope and envelope.display_name,
                              envelope and envelope.pushed_at, running.failed, running.released,
                              time.monotonic() - running.started, started_at))

    def _add_pending(self) -> None:
        pending = self._pending
        while pending:
            connection, queue, job_class, pushed_at, failed, released, runtime, started_at = pending.popleft()
            outcome = "failed" if failed else "released" if released else "processed"
            self.record((connection, queue, job_class or "(unreadable)"), outcome, runtime,
                        wait_since(pushed_at, started_at), at=started_at)

    def record(self, series: Series, outcome: str, runtime: float, wait: float | None, at: float | None = None) -> None:
        minute = int((self.clock.time() if at is None else at) // 60)
        runtime_ms = runtime * 1000
        with self._lock:
            bucket = self._minutes.get(minute)
            if bucket is None:
                bucket = self._minutes[minute] = {}
            totals = bucket.get(series)
            if totals is None:
                totals = bucket[series] = Totals()
            if outcome == "processed":
                totals.processed += 1
            elif outcome == "failed":
                totals.failed += 1
            else:
                totals.released += 1
            totals.runtime.add(runtime_ms)
            if wait is not None:
                totals.wait.add(wait * 1000 if wait > 0 else 0.0)
            self._dirty.add(minute)

    @contextmanager
    def flushing(self) -> Iterator[None]:
        thread = threading.Thread(target=self._flush_every_second, name="qctl-metrics", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=5)
            self.flush()

    def _flush_every_second(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Write the minute buckets that changed and the hours they belong to; then forget the minutes
        of hours that have passed and were written."""
        self._add_pending()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            rows = self._rows(dirty)
        unsent = set()
        for (prefix, number), (row, minutes) in rows.items():
            try:
                self.cache.put(keys.metrics_bucket(prefix, number, self.worker), row, self._ttl(prefix))
            except Exception as exc:  # metrics never stop a worker: written again with the next flush
                log.warning("could not write job metrics: %s", exc if isinstance(exc, QctlError) else repr(exc))
                unsent |= minutes
        with self._lock:
            self._dirty |= unsent
            self._drop_passed()

    def _rows(self, dirty: set[int]) -> dict[tuple[str, int], tuple[str, set[int]]]:
        """(prefix, bucket) → (the row, the minutes to write again if it fails)."""
        rows = {(keys.METRICS_MINUTE_PREFIX, m): (encode_row(self._minutes[m]), {m}) for m in dirty}
        for hour in {m // 60 for m in dirty}:
            minutes = {m for m in self._minutes if m // 60 == hour}
            totals: dict[Series, Totals] = {}
            for minute in minutes:
                for series, found in self._minutes[minute].items():
                    totals.setdefault(series, Totals()).merge(found)
            rows[(keys.METRICS_HOUR_PREFIX, hour)] = (encode_row(totals), {m for m in minutes if m in dirty})
        return rows

    def _drop_passed(self) -> None:
        hour = int(self.clock.time() // 3600)
        for minute in list(self._minutes):
            if minute // 60 < hour and minute not in self._dirty:
                del self._minutes[minute]

    def _ttl(self, prefix: str) -> float:
        if prefix == keys.METRICS_MINUTE_PREFIX:
            return self.options.minutes_kept_hours * 3600 + 60
        return self.options.hours_kept_days * 86400 + 3600
