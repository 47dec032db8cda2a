"""Worker heartbeats: every few seconds a worker writes who it is and what it is doing into the cache.

A small thread does the writing, so a long job never makes a live worker look
dead. Each record expires after a few missed beats, which is how the entries of
workers killed with -9 (or whose host died) disappear; a worker that stops
normally deletes its own at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Protocol

from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import check_bounds
from qctl.errors import ConfigError, QctlError
from qctl.limits import MAX_SECONDS

log = logging.getLogger("qctl.worker")

HEARTBEAT_SECONDS = 3.0
BEATS_TO_LIVE = 3
"""A record outlives this many missed beats (plus a second of slack), then expires."""


def time_to_live(every: float) -> float:
    return every * BEATS_TO_LIVE + 1


@dataclass(frozen=True)
class SlotJob:
    """A job one slot of a worker runs (`--concurrency`)."""

    raw: bytes
    queue: str
    started_at: float


@dataclass(frozen=True)
class WorkerStatus:
    """What the worker loop is doing right now (read from the heartbeat thread); with several slots
    the `job_*` fields are the oldest job in flight and `jobs` lists every one."""

    state: str
    job_raw: bytes | None = None
    job_queue: str | None = None
    job_started_at: float | None = None
    jobs_done: int = 0
    """Jobs that ran to their end (or deleted themselves); failed and released ones are counted apart."""
    jobs_failed: int = 0
    jobs_released: int = 0
    jobs: tuple[SlotJob, ...] = ()
    concurrency: int = 1


@dataclass(frozen=True)
class ProcessUsage:
    """The worker process's own resident memory and CPU share since the previous beat."""

    rss_mb: float
    cpu_percent: float


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    pid: int
    host: str
    connection: str
    queues: tuple[str, ...]
    started_at: float
    process_started_at: float
    """The OS's start time of the process, so a reused pid is never mistaken for this worker."""

    @classmethod
    def of_this_process(cls, name: str, connection: str, queues: tuple[str, ...], clock: Clock = SYSTEM_CLOCK) -> WorkerIdentity:
        pid = os.getpid()
        return cls(name, pid, socket.gethostname(), connection, queues, clock.time(), process_start_time(pid))

    @property
    def key(self) -> str:
        return keys.worker(self.host, self.pid)


@dataclass(frozen=True)
class WorkerRecord:
    """One heartbeat as stored: identity, state, current job and counters."""

    name: str
    pid: int
    host: str
    connection: str
    queues: tuple[str, ...]
    state: str
    job_id: str | None
    job_class: str | None
    job_queue: str | None
    job_started_at: float | None
    jobs_done: int
    started_at: float
    process_started_at: float
    heartbeat_at: float
    jobs_failed: int = 0
    jobs_released: int = 0
    rss_mb: float | None = None
    cpu_percent: float | None = None
    """As the worker measured itself at its last beat (None: not measured), so workers on other hosts show them too."""
    concurrency: int = 1
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    """With several slots: every job in flight, oldest first ({job_id, job_class, job_queue, job_started_at})."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkerRecord | None:
        """The record, or None when the value is not one (written by another version, or damaged)."""
        try:
            data = json.loads(text)
            # fields added later have defaults: a record of an older worker still reads
            values = {f.name: data[f.name] for f in fields(cls) if f.name in data or (f.default is MISSING and f.default_factory is MISSING)}
        except (ValueError, KeyError, TypeError):
            return None
        values["queues"] = tuple(values["queues"] or ())
        return cls(**values)


def describe_job(raw: bytes) -> tuple[str | None, str | None]:
    """(uuid, class name) from a payload, without decoding the job itself."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return None, "(unreadable payload)"
    if not isinstance(body, dict):
        return None, "(unreadable payload)"
    data = body["data"] if isinstance(body.get("data"), dict) else {}
    name = body.get("displayName") or data.get("commandName")
    uuid = body.get("uuid")
    return (str(uuid) if uuid else None), (str(name) if name else None)


def make_record(identity: WorkerIdentity, status: WorkerStatus, now: float, usage: ProcessUsage | None = None) -> WorkerRecord:
    job_id, job_class = describe_job(status.job_raw) if status.job_raw is not None else (None, None)
    return WorkerRecord(
        name=identity.name, pid=identity.pid, host=identity.host, connection=identity.connection,
        queues=identity.queues, state=status.state, job_id=job_id, job_class=job_class,
        job_queue=status.job_queue, job_started_at=status.job_started_at, jobs_done=status.jobs_done,
        started_at=identity.started_at, process_started_at=identity.process_started_at, heartbeat_at=now,
        jobs_failed=status.jobs_failed, jobs_released=status.jobs_released,
        rss_mb=usage.rss_mb if usage else None, cpu_percent=usage.cpu_percent if usage else None,
        concurrency=status.concurrency, in_flight=[in_flight(job) for job in status.jobs],
    )


def in_flight(job: SlotJob) -> dict[str, Any]:
    job_id, job_class = describe_job(job.raw)
    return {"job_id": job_id, "job_class": job_class, "job_queue": job.queue, "job_started_at": job.started_at}


class Heartbeat(Protocol):
    def beating(self, status: Callable[[], WorkerStatus]) -> AbstractContextManager[None]:
        """Report `status()` regularly while the block runs; withdraw the report afterwards."""


class NoHeartbeat:
    def beating(self, status: Callable[[], WorkerStatus]) -> AbstractContextManager[None]:
        return nullcontext()


class CacheHeartbeat:
    def __init__(self, cache: CacheStore, identity: WorkerIdentity, every: float = HEARTBEAT_SECONDS,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.cache = cache
        self.identity = identity
        self.every = every
        self.clock = clock
        self.failing = False
        self.process: Any = None

    @contextmanager
    def beating(self, status: Callable[[], WorkerStatus]) -> Iterator[None]:
        stop = threading.Event()
        thread = threading.Thread(target=self._beat_until, args=(stop, status), name="qctl-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)  # a write in flight lands before the record is withdrawn
            self._withdraw()

    def _beat_until(self, stop: threading.Event, status: Callable[[], WorkerStatus]) -> None:
        while not stop.is_set():
            self.beat(status())
            stop.wait(self.every)

    def beat(self, status: WorkerStatus) -> None:
        record = make_record(self.identity, status, self.clock.time(), self.usage())
        try:
            self.cache.put(self.identity.key, record.to_json(), ttl=time_to_live(self.every))
        except QctlError as exc:
            if not self.failing:
                log.warning("heartbeat not written: %s", exc)
            self.failing = True
            return
        if self.failing:
            log.warning("heartbeats written again")
            self.failing = False

    def usage(self) -> ProcessUsage | None:
        """RSS and CPU of this process (the CPU share since the previous call; 0 on the first)."""
        import psutil

        try:
            if self.process is None:
                self.process = psutil.Process(self.identity.pid)
            with self.process.oneshot():
                rss = self.process.memory_info().rss / (1024 * 1024)
                cpu = self.process.cpu_percent(None)
        except psutil.Error:
            return None
        return ProcessUsage(round(rss, 1), float(cpu))

    def _withdraw(self) -> None:
        try:
            self.cache.forget(self.identity.key)
        except QctlError as exc:
            log.warning("heartbeat not withdrawn (it expires by itself): %s", exc)


def process_start_time(pid: int) -> float:
    """When the OS started process `pid`, in Unix seconds — what psutil's create_time() says. On Linux
    it is read from /proc (boot time + the process's start in clock ticks), so a worker's start-up
    does not wait for psutil; elsewhere psutil answers."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat, open("/proc/stat", "rb") as system:
            after_name = stat.read().rsplit(b")", 1)[1].split()  # the name may hold spaces and parentheses
            boot = next(int(line.split()[1]) for line in system if line.startswith(b"btime "))
        return boot + int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil

        return float(psutil.Process(pid).create_time())


def heartbeat_seconds() -> float:
    """Seconds between worker heartbeats; QCTL_HEARTBEAT_SECONDS tunes it (tests use 1)."""
    text = os.environ.get("QCTL_HEARTBEAT_SECONDS", "")
    try:
        seconds = float(text) if text else HEARTBEAT_SECONDS
    except ValueError:
        raise ConfigError(f"QCTL_HEARTBEAT_SECONDS: expected a number of seconds, got {text!r}") from None
    check_bounds(seconds, 0, MAX_SECONDS, "seconds", "QCTL_HEARTBEAT_SECONDS")
    return max(0.2, seconds)
