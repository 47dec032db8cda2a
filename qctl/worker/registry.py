"""Who is working: the heartbeat records read back, with psutil facts for processes on this host.

A record of this host whose pid is gone (or now belongs to another process)
is left out at once; records of other hosts vanish when their heartbeats expire.
"""

from __future__ import annotations

import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.worker.heartbeat import WorkerRecord

if TYPE_CHECKING:
    import psutil

CPU_SAMPLE_SECONDS = 0.2


@dataclass(frozen=True)
class ProcessFacts:
    rss_mb: float
    cpu_percent: float
    uptime_seconds: float


@dataclass(frozen=True)
class WorkerView:
    record: WorkerRecord
    facts: ProcessFacts | None
    """None for a worker on another host (psutil only sees this one)."""


def read_records(cache: CacheStore) -> list[WorkerRecord]:
    found = (WorkerRecord.from_json(value) for value in cache.items(keys.WORKER_PREFIX).values())
    return sorted((r for r in found if r is not None), key=lambda r: (r.host, r.name, r.pid))


def live_records(cache: CacheStore, host: str | None = None) -> list[WorkerRecord]:
    """Every live worker's record, as `running_workers` finds them, without measuring the processes."""
    here = host or socket.gethostname()
    return [r for r in read_records(cache) if r.host != here or the_same_process(r) is not None]


def running_workers(cache: CacheStore, host: str | None = None, sample: float = CPU_SAMPLE_SECONDS) -> list[WorkerView]:
    """Every live worker, oldest host/name/pid order; local ones measured over one short CPU sample."""
    here = host or socket.gethostname()
    views: list[tuple[WorkerRecord, psutil.Process | None]] = []
    for record in read_records(cache):
        if record.host != here:
            views.append((record, None))
            continue
        process = the_same_process(record)
        if process is not None:
            views.append((record, process))
    local = [process for _, process in views if process is not None]
    cpu = sample_cpu(local, sample) if local else {}
    return [WorkerView(record, facts_of(process, cpu) if process else None) for record, process in views]


def the_same_process(record: WorkerRecord) -> psutil.Process | None:
    """The worker's process when it still runs (a reused pid has another start time)."""
    import psutil

    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.process_started_at) > 1.0:
            return None
        return process
    except psutil.Error:
        return None


def sample_cpu(processes: list[psutil.Process], seconds: float) -> dict[int, float]:
    import psutil

    for process in processes:
        with suppress(psutil.Error):
            process.cpu_percent(None)  # the first reading only starts the measurement
    time.sleep(seconds)
    usage = {}
    for process in processes:
        try:
            usage[process.pid] = process.cpu_percent(None)
        except psutil.Error:
            usage[process.pid] = 0.0
    return usage


def facts_of(process: psutil.Process, cpu: dict[int, float]) -> ProcessFacts | None:
    import psutil

    try:
        with process.oneshot():
            rss = process.memory_info().rss / (1024 * 1024)
            uptime = time.time() - process.create_time()
    except psutil.Error:
        return None
    return ProcessFacts(round(rss, 1), cpu.get(process.pid, 0.0), round(uptime, 1))
