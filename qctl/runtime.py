"""The composition root: the one place that turns config into concrete objects.

`current()` gives the process's runtime (loaded from the working directory on
first use); `use()` swaps one in for a block, which is how tests and the CLI's
`--config` choose theirs.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from qctl import config as config_module
from qctl.bus.dispatcher import Dispatcher
from qctl.bus.hooks import CompositeHooks
from qctl.cache.base import CacheStore
from qctl.clock import SYSTEM_CLOCK
from qctl.config import Config
from qctl.connections import ConnectionManager
from qctl.drivers.names import check_queue_name
from qctl.errors import ConfigError, QctlError
from qctl.events import EventBus
from qctl.events import bus as default_event_bus
from qctl.failed.base import FailedJobStore
from qctl.jobs.resolve import Resolver
from qctl.payload.signing import Signer
from qctl.worker.controls import CacheControls
from qctl.worker.counters import CacheJobCounters
from qctl.worker.failing import FailureRules
from qctl.worker.heartbeat import CacheHeartbeat, WorkerIdentity, heartbeat_seconds
from qctl.worker.metrics import CacheMetrics, JobMetrics, NoMetrics
from qctl.worker.models import ModelLoader
from qctl.worker.options import WorkerOptions
from qctl.worker.runner import JobRunner
from qctl.worker.timeout import TimeoutGuard, job_timeout, witness_directory
from qctl.worker.worker import Worker

if TYPE_CHECKING:
    from qctl.bus.batching import Batches
    from qctl.bus.chain import Chains
    from qctl.bus.retry import FailedJobRetrier
    from qctl.bus.unique import UniqueLocks


class Runtime:
    def __init__(self, config: Config, events: EventBus | None = None) -> None:
        self.config = config
        self.events = events or default_event_bus

    @cached_property
    def signer(self) -> Signer | None:
        return Signer(self.config.key) if self.config.key else None

    @cached_property
    def connections(self) -> ConnectionManager:
        return ConnectionManager(self.config, self.run_in_process)

    @cached_property
    def failed_store(self) -> FailedJobStore:
        failed = self.config.failed
        if failed.driver == "null":
            from qctl.failed.null import NullFailedJobStore

            return NullFailedJobStore()
        if failed.driver == "memory":
            from qctl.failed.memory import MemoryFailedJobStore

            return MemoryFailedJobStore()
        if failed.driver == "redis":
            from qctl.failed.redis import RedisFailedJobStore

            return RedisFailedJobStore(failed.url, failed.table, where=failed.url_key)
        from qctl.failed.database import DatabaseFailedJobStore

        return DatabaseFailedJobStore(failed.url, failed.table)

    @cached_property
    def cache(self) -> CacheStore:
        from qctl import cache

        return cache.connect(self.config.cache)

    def cache_store(self, name: str | None = None) -> CacheStore:
        """The `[cache]` store (name None or "default"), or a named `[caches.NAME]` one."""
        if name is None or name == "default":
            return self.cache
        stores = self.__dict__.setdefault("_named_caches", {})
        if name not in stores:
            from qctl import cache

            store_config = self.config.caches.get(name)
            if store_config is None:
                known = ", ".join(sorted(self.config.caches)) or "none"
                raise ConfigError(f"no cache store named {name!r}: add a [caches.{name}] section (named stores: {known})")
            stores[name] = cache.connect(store_config)
        return stores[name]  # type: ignore[no-any-return]

    @cached_property
    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.config, self.connections, self.signer, self.run_in_process, locks=self.unique_locks)

    @cached_property
    def unique_locks(self) -> UniqueLocks:
        from qctl.bus.unique import UniqueLocks

        return UniqueLocks(self.cache_store)

    @cached_property
    def chains(self) -> Chains:
        return self.batches.chains

    @cached_property
    def batches(self) -> Batches:
        """Chains and batches come together: a chain may hold a batch and a batch chains."""
        from qctl.bus import batch_store
        from qctl.bus.batching import Batches
        from qctl.bus.chain import Chains

        chains = Chains(self.dispatcher, self.signer, lambda: self.cache)
        return Batches(lambda: batch_store.connect(self.config.batching), self.dispatcher, chains,
                       self.resolver(), self.signer)

    @cached_property
    def models(self) -> ModelLoader | None:
        """How runners fetch model attributes again (`[models] session`), or None when it is not set."""
        session = self.config.models_session
        return None if session is None else ModelLoader(session, self.config.app, self.config.source)

    def resolver(self, trusted: bool = False) -> Resolver:
        return Resolver(self.config.app, trusted=trusted)

    def import_app(self) -> None:
        """Import every `app` module, so their jobs and listeners register before work starts."""
        for module in self.config.app:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                missing = exc.name or ""
                if module == missing or module.startswith(missing + "."):  # the app module itself is not there
                    if self.config.app_is_default:
                        continue  # no `jobs` package, and none was asked for: nothing to import
                    raise ConfigError(f"{self.config.source}: app: no module named {module!r} (looked on sys.path, "
                                      "the current directory first)") from None
                message = f"app module {module!r} failed to import: it imports {missing!r}, which is not installed"
                raise QctlError(message) from exc  # its traceback with -v
            except ImportError as exc:
                raise ConfigError(f"{self.config.source}: app: cannot import {module!r} ({exc})") from None
            except Exception as exc:  # a bug in the app module itself: one line, the traceback with -v
                message = f"app module {module!r} failed to import: {type(exc).__name__}: {exc}"
                raise QctlError(message.splitlines()[0]) from exc

    def runner(self, connection_name: str, options: WorkerOptions, rules: FailureRules | None = None,
               timeout_guard: TimeoutGuard = job_timeout) -> JobRunner:
        """The runner a worker of `connection_name` settles its jobs with (work, and qctl.testing's work_off)."""
        return JobRunner(
            connection_name,
            signer=self.signer,
            resolver=self.resolver(),
            failed_store=self.failed_store,
            events=self.events,
            options=options,
            rules=rules or self.failure_rules(connection_name, options),
            timeout_guard=timeout_guard,
            hooks=self.hooks(),
            batches=self.batches,
            caches=self.cache_store,
            models=self.models,
        )

    def worker(self, connection: str | None, options: WorkerOptions) -> Worker:
        driver = self.connections.get(connection)
        rules = self.failure_rules(driver.connection_name, options)
        runner = self.runner(driver.connection_name, options, rules)
        queues = options.queues or (driver.default_queue,)
        kind = self.config.connection(driver.connection_name).driver
        for queue in queues:
            check_queue_name(queue, kind, "--queue")
        return Worker(driver, runner, options, self.events, controls=CacheControls(self.cache, connection=driver.connection_name, queues=queues),
                      heartbeat=self.heartbeat(options.name, driver.connection_name, queues),
                      hard_timed_out=rules.counters.note_hard_timeout if rules.counters else lambda job_id: None,
                      witnesses=witness_directory(str(self.config.directory or Path.cwd())),
                      metrics=self.job_metrics(options.name))

    def job_metrics(self, name: str) -> JobMetrics:
        """What the worker counts per connection, queue and class (`[metrics]`), kept in the cache store."""
        if not self.config.metrics.enabled:
            return NoMetrics()
        identity = WorkerIdentity.of_this_process(name, "", ())
        return CacheMetrics(self.cache, f"{identity.host}:{identity.pid}:{int(identity.process_started_at)}",
                            self.config.metrics)

    def hooks(self) -> CompositeHooks:
        """The after-duties every runner calls when a job settles, in order: batch bookkeeping, the chain,
        then unique locks."""
        from qctl.bus.batching import BatchHooks
        from qctl.bus.chain import ChainHooks
        from qctl.bus.unique import UniqueHooks

        return CompositeHooks([BatchHooks(self.batches), ChainHooks(self.chains, self.resolver()),
                               UniqueHooks(self.unique_locks)])

    def heartbeat(self, name: str, connection: str, queues: tuple[str, ...]) -> CacheHeartbeat:
        identity = WorkerIdentity.of_this_process(name, connection, queues)
        return CacheHeartbeat(self.cache, identity, every=heartbeat_seconds())

    def failure_rules(self, connection_name: str, options: WorkerOptions) -> FailureRules:
        """Attempt rules with max_exceptions and max_stalls counted per job uuid in the shared cache."""
        return FailureRules(
            options,
            SYSTEM_CLOCK,
            counters=CacheJobCounters(self.cache),
            max_stalls=self.config.connection(connection_name).max_stalls,
        )

    def failed_job_retrier(self) -> FailedJobRetrier:
        """`qctl retry`: pushes failed jobs back; loads jobs the way a worker would (for retry_until)."""
        from qctl.bus.retry import FailedJobRetrier
        from qctl.payload.envelope import parse
        from qctl.worker.instantiate import instantiate

        resolver = self.resolver()
        return FailedJobRetrier(
            self.failed_store,
            self.connections,
            self.signer,
            lambda raw: instantiate(parse(raw, self.signer), resolver, self.signer),
        )

    def run_in_process(self, connection_name: str, queue: str, raw: bytes) -> None:
        """The sync driver and dispatch_sync: run a payload built in this process, now (see worker.inline)."""
        from qctl.failed.null import NullFailedJobStore
        from qctl.worker.inline import inline_runner, run_inline

        runner = inline_runner(
            connection_name,
            signer=self.signer,
            resolver=self.resolver(trusted=True),
            # the exception goes to the caller; a record would have nowhere sensible to be retried to
            failed_store=NullFailedJobStore(),
            events=self.events,
            hooks=self.hooks(),
            batches=self.batches,
            caches=self.cache_store,
            models=self.models,
        )
        run_inline(runner, queue, raw)

    def close(self) -> None:
        if "connections" in self.__dict__:
            self.connections.close()
        if "batches" in self.__dict__ and "store" in self.batches.__dict__:
            self.batches.store.close()


# --- the process's runtime ---------------------------------------------------------------

_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(config_module.load())
        return _current


@contextmanager
def use(runtime_or_config: Runtime | Config, close: bool = True) -> Iterator[Runtime]:
    """Make a runtime current for the block (tests, the CLI's --config); closed after it unless
    `close=False` (its connections, and a memory queue with them, then stay open)."""
    global _current
    runtime = runtime_or_config if isinstance(runtime_or_config, Runtime) else Runtime(runtime_or_config)
    with _lock:
        previous, _current = _current, runtime
    try:
        yield runtime
    finally:
        with _lock:
            _current = previous
        if close:
            runtime.close()


def set_current(runtime: Runtime) -> None:
    global _current
    with _lock:
        _current = runtime
