"""An in-memory qctl for integration tests: the `memory` driver and stores, and `work_off()`.

`work_off()` runs what the memory connections hold through the worker's own loop and runner
(middleware, failure rules, chains, batches, `failed()`), in this thread, until nothing is ready.
Two things differ from `qctl work`: no timeout is armed (the soft timeout ends the process) and no
signal handler is installed, so it also runs outside the main thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from qctl import config as config_module
from qctl.config import Config, StoreConfig
from qctl.drivers.base import Driver
from qctl.drivers.memory import MemoryDriver
from qctl.worker.options import WorkerOptions
from qctl.worker.timeout import no_timeout
from qctl.worker.worker import Worker

if TYPE_CHECKING:
    from qctl.failed.base import FailedJob
    from qctl.runtime import Runtime

MAX_JOBS = 10_000
"""work_off()'s default bound: a job that keeps dispatching itself cannot loop for ever."""


def memory_config(app: Sequence[str] = (), *, key: str | None = None, **sections: Any) -> Config:
    """A config whose default connection `memory`, cache, failed and batch stores all live in memory.

    `sections` are merged over it as TOML tables would be (`connections={...}`, `models={...}`)."""
    raw: dict[str, Any] = {
        "default": "memory",
        "app": list(app),
        "connections": {"memory": {"driver": "memory"}},
        "failed": {"driver": "memory"},
        "batching": {"driver": "memory"},
        "cache": {"driver": "memory"},
    }
    if key is not None:
        raw["key"] = key
    for name, value in sections.items():
        raw[name] = {**raw.get(name, {}), **value} if isinstance(value, dict) else value
    return config_module.parse(raw, "qctl.testing.memory_config()")


@contextmanager
def memory_runtime(app: Sequence[str] = (), *, key: str | None = None, **sections: Any) -> Iterator[Runtime]:
    """The current runtime, for the block, is one on `memory_config(...)`; the previous one comes back after."""
    from qctl.runtime import Runtime, use

    with use(Runtime(memory_config(app, key=key, **sections))) as runtime:
        yield runtime


def in_memory(config: Config) -> Config:
    """`config` with every database and Redis connection on the memory driver (same names, queues and
    retry_after) and the cache, named caches, failed and batch stores in memory; app, key and models kept."""
    connections = {name: replace(c, driver="memory", url=None, after_commit=False, enqueue_in_transaction=False)
                   if c.driver in ("database", "redis") else c for name, c in config.connections.items()}
    return replace(
        config,
        source=f"{config.source} (in memory, qctl.testing)",
        connections=connections,
        failed=StoreConfig("memory", "", config.failed.table),
        batching=StoreConfig("memory", "", config.batching.table),
        cache=StoreConfig("memory", "", config.cache.table),
        caches={name: StoreConfig("memory", "", c.table) for name, c in config.caches.items()},
    )


@dataclass
class MemoryQctl:
    """What the `qctl_memory` fixture gives: the runtime, and short ways to drain and inspect it."""

    runtime: Runtime

    def work_off(self, connection: str | None = None, queue: str | Sequence[str] | None = None, *,
                 max_jobs: int = MAX_JOBS) -> int:
        return work_off(connection, queue, max_jobs=max_jobs, runtime=self.runtime)

    def size(self, queue: str | None = None, connection: str | None = None) -> int:
        driver = self.runtime.connections.get(connection)
        return driver.size(queue or driver.default_queue)

    def failed_jobs(self) -> list[FailedJob]:
        return self.runtime.failed_store.all()


@contextmanager
def memory_qctl(config: Config | None = None) -> Iterator[MemoryQctl]:
    """The project's config (or `config`) `in_memory()`, current for the block."""
    from qctl.runtime import Runtime, use

    with use(Runtime(in_memory(config or config_module.load()))) as runtime:
        yield MemoryQctl(runtime)


def work_off(connection: str | None = None, queue: str | Sequence[str] | None = None, *,
             max_jobs: int = MAX_JOBS, runtime: Runtime | None = None) -> int:
    """Run the queued jobs of the memory connections and those an active `Queue.fake()` recorded (or only
    `connection`'s), on their queues (or `queue`), until none is ready or `max_jobs` ran; returns how many
    ran. Delayed and released jobs whose time has not come stay queued."""
    if runtime is None:
        from qctl.runtime import current

        runtime = current()
    done = 0
    while done < max_jobs:
        ran = 0
        for driver in _drivers(runtime, connection, queue):
            ran += _drain(runtime, driver, queue, max_jobs - done - ran)
        if ran == 0:
            return done
        done += ran
    return done


def _drivers(runtime: Runtime, connection: str | None, queue: str | Sequence[str] | None) -> list[Driver]:
    """The memory connections (or `connection`, if it is one, or any connection when its queues are named),
    then what an active `Queue.fake()` holds."""
    chosen = [c for c in runtime.config.connections.values() if connection in (None, c.name)]
    found = [runtime.connections.get(c.name) for c in chosen if c.driver == "memory" or (connection and queue)]
    fake = runtime.__dict__.get("_qctl_queue_fake")
    if fake is not None:
        found += [held for name, held in list(fake.held.items()) if connection in (None, name)]
    elif connection and not found:
        raise ValueError(f"work_off: connection {connection!r} is not a memory connection; name the queue(s) "
                         "to work it in this process")
    return found


def _drain(runtime: Runtime, driver: Driver, queue: str | Sequence[str] | None, max_jobs: int) -> int:
    memory = getattr(driver, "real", driver)  # under Queue.fake() the driver is wrapped
    if queue is None:
        assert isinstance(memory, MemoryDriver)
        queues = tuple(memory.queues())
    else:
        queues = (queue,) if isinstance(queue, str) else tuple(queue)
    if not queues or max_jobs <= 0:
        return 0
    worker = _worker(runtime, driver, WorkerOptions(
        name="work_off", queues=queues, stop_when_empty=True, max_jobs=max_jobs, sleep=0, memory=0, timeout=0))
    try:
        worker.daemon()
    finally:
        worker.delete_finished()
        worker.lease.close()
    return worker.jobs_processed


def _worker(runtime: Runtime, driver: Driver, options: WorkerOptions) -> Worker:
    runner = runtime.runner(driver.connection_name, options, timeout_guard=no_timeout)
    return Worker(driver, runner, options, runtime.events)
