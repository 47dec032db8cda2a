"""Prometheus metrics of the queues, workers and jobs: a `prometheus_client` collector that reads
the stores afresh on every scrape (`qctl metrics --prometheus`, `qctl serve-metrics`).

Imports `prometheus_client` (the `qctl[prometheus]` extra): import this module only once
`qctl.cli.prometheus.require_client()` said it is there.

Gauges come from `qctl.monitoring.status.gather` (counts, never payloads). Job counters and the
runtime and wait histograms come from the workers' hour rows through a `JobCounter`, so they only
grow; the histograms' buckets are the ones the workers record in (`BOUNDS_MS`), so they are real
Prometheus histograms, not summaries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from qctl.cache import keys
from qctl.db.reading import reading_only
from qctl.monitoring.counting import JobCounter
from qctl.monitoring.metrics import read_rows
from qctl.monitoring.status import Status, gather, read_noting
from qctl.worker.metrics import BOUNDS_MS, Histogram, Series, Totals

if TYPE_CHECKING:
    from qctl.runtime import Runtime

STATES = ("ready", "delayed", "reserved")
ALWAYS_COUNTED_WORKER_STATES = ("working", "idle")
JOB_LABELS = ["connection", "queue", "class"]
QUEUE_LABELS = ["connection", "queue"]


class QctlCollector:
    """Every qctl metric, read when collected. `from_zero`: job counters count from the first read
    (a server); otherwise from what the stores hold (one exposition printed by `qctl metrics`)."""

    def __init__(self, runtime: Runtime, names: tuple[str, ...] = (), queues: tuple[str, ...] = (),
                 job_class: str | None = None, from_zero: bool = False,
                 on_problems: Callable[[list[str]], None] | None = None) -> None:
        self.runtime, self.names, self.queues, self.job_class = runtime, names, queues, job_class
        self.on_problems = on_problems
        """Told the problem lines of each read whose problems differ from the previous read's."""
        self.counter = JobCounter(from_zero)
        self.from_zero = from_zero
        self.started_at = time.time()
        self.last_problems: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """A first read: checks the names and learns the job rows (a server counts from here)."""
        self.read()

    def read(self) -> tuple[Status, dict[Series, Totals] | None]:
        with self._lock:  # one scrape at a time: the job rows must be read and counted in order
            return self._read()

    def _read(self) -> tuple[Status, dict[Series, Totals] | None]:
        status = gather(self.runtime, self.names, self.queues)
        jobs = None
        if self.runtime.config.metrics.enabled:
            with reading_only():
                jobs = read_noting(status, "job metrics (cache store)",
                                   lambda: self.counter.update(read_rows(self.runtime.cache, keys.METRICS_HOUR_PREFIX)), None)
        if status.problems != self.last_problems and self.on_problems is not None:
            self.on_problems(status.problems)
        self.last_problems = status.problems
        return status, jobs

    def collect(self) -> Iterator[Metric]:
        status, jobs = self.read()
        yield from queue_families(status)
        yield worker_family(status)
        if jobs is not None:
            wanted = {s: t for s, t in jobs.items() if (not self.queues or s[1] in self.queues)
                      and (self.job_class is None or s[2] == self.job_class)}
            yield from job_families(wanted, self.started_at if self.from_zero else None)
        problems = GaugeMetricFamily("qctl_read_errors", "Stores qctl could not read during this scrape.")
        problems.add_metric([], len(status.problems))
        yield problems


def registry_of(collector: QctlCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def queue_families(status: Status) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("qctl_queue_jobs", "Jobs in the queue by state.", labels=[*QUEUE_LABELS, "state"])
    oldest = GaugeMetricFamily("qctl_queue_oldest_job_age_seconds",
                               "Seconds the oldest ready job has waited (0 when none is ready).", labels=QUEUE_LABELS)
    failed = GaugeMetricFamily("qctl_failed_jobs", "Failed jobs the failed-job store holds.", labels=QUEUE_LABELS)
    workers = GaugeMetricFamily("qctl_queue_workers", "Live workers serving the queue.", labels=QUEUE_LABELS)
    for item in status.queues:
        where, sizes = [item.connection, item.queue], item.sizes
        for state, count in zip(STATES, (sizes.ready, sizes.delayed, sizes.reserved), strict=True):
            jobs.add_metric([*where, state], count)
        oldest.add_metric(where, sizes.oldest_wait or 0.0)
        failed.add_metric(where, item.failed.total)
        workers.add_metric(where, item.workers)
    yield from (jobs, oldest, failed, workers)


def worker_family(status: Status) -> Metric:
    family = GaugeMetricFamily("qctl_workers", "Live workers (from their heartbeats) by state.", labels=["state"])
    by_state = dict.fromkeys(ALWAYS_COUNTED_WORKER_STATES, 0)
    for record in status.workers:
        by_state[record.state] = by_state.get(record.state, 0) + 1
    for state, count in sorted(by_state.items()):
        family.add_metric([state], count)
    return family


def job_families(jobs: dict[Series, Totals], created: float | None) -> Iterator[Metric]:
    counters = {name: CounterMetricFamily(f"qctl_jobs_{name}", f"Jobs {name} by the workers.", labels=JOB_LABELS)
                for name in ("processed", "failed", "released")}
    runtime = HistogramMetricFamily("qctl_job_runtime_seconds", "Seconds a job ran (every outcome).", labels=JOB_LABELS)
    wait = HistogramMetricFamily("qctl_job_wait_seconds", "Seconds from a job's push to the start of its run.",
                                 labels=JOB_LABELS)
    for series, totals in sorted(jobs.items()):
        labels = list(series)
        for name, value in (("processed", totals.processed), ("failed", totals.failed), ("released", totals.released)):
            counters[name].add_metric(labels, value, created=created)
        runtime.add_metric(labels, buckets_of(totals.runtime), totals.runtime.total_ms / 1000)
        wait.add_metric(labels, buckets_of(totals.wait), totals.wait.total_ms / 1000)
    yield from (*counters.values(), runtime, wait)


def buckets_of(histogram: Histogram) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs in seconds, ending with +Inf."""
    found, seen = [], 0
    for bound, count in zip(BOUNDS_MS, histogram.counts, strict=False):
        seen += count
        found.append((repr(bound / 1000), float(seen)))
    found.append(("+Inf", float(histogram.count)))
    return found
