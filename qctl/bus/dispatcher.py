"""Dispatching: pick the connection and queue, build the payload, push it (or run it now)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qctl.bus.payloads import build_envelope, delay_seconds
from qctl.bus.unique import UniqueLocks, lock_spec
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import Config
from qctl.connections import ConnectionManager
from qctl.drivers.base import Driver
from qctl.errors import SerializationError
from qctl.jobs.job import Job
from qctl.jobs.resolve import module_is_within
from qctl.payload.envelope import Envelope
from qctl.payload.signing import Signer

RunInProcess = Callable[[str, str, bytes], None]

log = logging.getLogger("qctl.dispatch")


@dataclass(frozen=True)
class Prepared:
    """A job ready to push: where to, and the payload bytes that will travel unchanged."""

    driver: Driver
    queue: str
    payload: str
    delay: float
    uuid: str

    @property
    def item(self) -> tuple[str, str, float]:
        """(payload, queue, delay), as drivers take them."""
        return self.payload, self.queue, self.delay


class Dispatcher:
    def __init__(
        self,
        config: Config,
        connections: ConnectionManager,
        signer: Signer | None,
        run_in_process: RunInProcess,
        clock: Clock = SYSTEM_CLOCK,
        locks: UniqueLocks | None = None,
    ) -> None:
        self.config = config
        self.locks = locks
        self.connections = connections
        self.signer = signer
        self.run_in_process = run_in_process
        self.clock = clock
        self._allowed_modules: set[str] = set()

    def dispatch(self, job: Job) -> str | None:
        """Push the job on its connection and queue; returns its id (the payload uuid), or None for a
        unique job whose lock another queued job holds (nothing is pushed)."""
        spec = lock_spec(job) if self.locks is not None else None
        if spec is None:
            ready = self.prepare(job)
            ready.driver.push(ready.payload, ready.queue, ready.delay)
            return ready.uuid
        assert self.locks is not None
        ready = self.prepare(job, extra=spec.field())
        if not self.locks.acquire(spec, ready.uuid):
            log.debug("%s not dispatched: a job with its unique id holds %s", job.display_name(), spec.key)
            return None
        try:
            ready.driver.push(ready.payload, ready.queue, ready.delay)
        except BaseException:
            self.locks.release_quietly(spec.key, spec.via, ready.uuid)
            raise
        return ready.uuid

    def bulk(self, jobs: Iterable[Job]) -> list[str]:
        """Push many jobs with one `driver.bulk` per connection (a pipeline per chunk on Redis); returns their ids.

        Every payload is built and checked before anything is pushed, so a bad job pushes nothing.
        """
        prepared = [self.prepare(job) for job in jobs]
        self.push_all(prepared)
        return [ready.uuid for ready in prepared]

    def prepare(
        self,
        job: Job,
        *,
        uuid: str | None = None,
        extra: Mapping[str, Any] | None = None,
        connection: str | None = None,
        queue: str | None = None,
    ) -> Prepared:
        """Choose the connection, queue and delay, and build the (signed) payload.

        `connection` and `queue` are used when the job names none of its own (a chain's, a batch's).
        """
        name = self.connection_for(job, connection)
        is_sync = self.config.connection(name).driver == "sync"
        driver = self.connections.get(name)
        target = job._qctl_queue or job.queue or queue or driver.default_queue
        envelope = self.envelope(job, uuid=uuid, extra=extra, allow_main=is_sync)
        delay = delay_seconds(job._qctl_delay, self.clock.time())
        return Prepared(driver, target, envelope.to_json(self.signer), delay, envelope.uuid)

    def connection_for(self, job: Job, fallback: str | None = None) -> str:
        return job._qctl_connection or job.connection or fallback or self.config.default

    def envelope(
        self, job: Job, *, uuid: str | None = None, extra: Mapping[str, Any] | None = None, allow_main: bool = False
    ) -> Envelope:
        """The job's payload, checked as every worker would check it (unless it runs in this process)."""
        envelope = build_envelope(job, self.signer, allow_main=allow_main, uuid=uuid, extra_data=extra)
        if not allow_main:
            self.check_workers_may_run(envelope)
        return envelope

    def push_all(self, prepared: Iterable[Prepared]) -> None:
        """One `driver.bulk` per connection, in the order given."""
        by_connection: dict[str, list[Prepared]] = {}
        for ready in prepared:
            by_connection.setdefault(ready.driver.connection_name, []).append(ready)
        for group in by_connection.values():
            group[0].driver.bulk([ready.item for ready in group])

    def dispatch_sync(self, job: Job) -> None:
        """Run the job in this process through the worker's path; its exception propagates."""
        envelope = self.envelope(job, allow_main=True)
        queue = job._qctl_queue or job.queue or "default"
        self.run_in_process("sync", queue, envelope.to_json(self.signer).encode("utf-8"))

    def check_workers_may_run(self, envelope: Envelope) -> None:
        """Refuse at dispatch what every worker would refuse: code outside the `app` packages."""
        module = envelope.command_name.partition(":")[0]
        if module in self._allowed_modules:
            return
        if module_is_within(module, self.config.app):
            self._allowed_modules.add(module)
            return
        allowed = ", ".join(repr(p) for p in self.config.app) or "nothing"
        raise SerializationError(
            f"{envelope.command_name}: workers only run code from the app packages (app = [{allowed}] in "
            f"{self.config.source}); add {module.split('.')[0]!r} to `app` to allow it"
        )
