"""Helpers for worker-level tests that must work on every driver (no SQL here: Redis slots in).

`MiniSupervisor` stands in for supervisord: it keeps N worker processes alive,
restarting each one that exits and recording every exit status.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qctl.failed.base import FailedJob
from qctl.jobs.job import Job
from qctl.runtime import Runtime
from tests.support.processes import WorkerProcess, spawn_qctl, wait_for


def dispatch(runtime: Runtime, job: Job, queue: str | None = None) -> str:
    if queue:
        job.on_queue(queue)
    return runtime.dispatcher.dispatch(job)


def failed_records(runtime: Runtime) -> dict[str, FailedJob]:
    return {record.uuid: record for record in runtime.failed_store.all()}


def wait_for_failed(runtime: Runtime, uuid: str, timeout: float) -> FailedJob:
    wait_for(lambda: runtime.failed_store.find(uuid) is not None, timeout, interval=0.2, message=f"failed record {uuid}")
    found = runtime.failed_store.find(uuid)
    assert found is not None
    return found


def queue_size(runtime: Runtime, queue: str = "default") -> int:
    return runtime.connections.get().size(queue)


STARTUP_SECONDS = 3.0


@dataclass
class Exit:
    pid: int
    status: int
    at: float


@dataclass
class MiniSupervisor:
    """Keeps `count` workers running `args`; each exit is recorded and the worker restarted."""

    args: Sequence[str]
    cwd: Path
    count: int = 1
    env: dict[str, str] | None = None
    restart_env: dict[str, str] | None = None
    """Environment of restarted workers (default: `env`), e.g. without the crash point."""
    workers: list[WorkerProcess] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.spawned_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> MiniSupervisor:
        with self._lock:
            self.workers = [self._spawn(n, self.env) for n in range(self.count)]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, n: int, env: dict[str, str] | None) -> WorkerProcess:
        worker = spawn_qctl(self.args, self.cwd, env=env, name=f"w{n}")
        self.spawned_at[n] = time.monotonic()
        self.started.append(worker.pid)
        return worker

    def _watch(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                for n, worker in enumerate(self.workers):
                    status = worker.process.poll()
                    if status is not None and not self._stopping.is_set():
                        self.exits.append(Exit(worker.pid, status, time.monotonic()))
                        self.workers[n] = self._spawn(n, self.env if self.restart_env is None else self.restart_env)

    def kill_random(self, rng: random.Random) -> int:
        """SIGKILL one live worker (the watcher restarts it); returns its pid."""
        with self._lock:
            worker = rng.choice(self.workers)
            if worker.alive():
                worker.kill()
                self.killed.append(worker.pid)
            return worker.pid

    def statuses(self) -> list[int]:
        return [e.status for e in self.exits]

    def stop(self, timeout: float = 30) -> list[int]:
        """SIGTERM every worker and wait: each finishes its job and exits; returns the statuses of
        those not killed by the test (a kill just before stopping is not restarted)."""
        self._stopping.set()
        self._thread.join(timeout=5)
        # A worker still importing has no signal handlers yet (SIGTERM kills it: -15); let it start.
        youngest = max(self.spawned_at.values(), default=0.0)
        time.sleep(max(0.0, youngest + STARTUP_SECONDS - time.monotonic()))
        for worker in self.workers:
            if worker.alive():
                worker.signal(signal.SIGTERM)
        statuses = [(worker.pid, worker.wait(timeout)) for worker in self.workers]
        return [status for pid, status in statuses if pid not in self.killed]

    def stderr(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.cwd.glob("w*.err")))
