"""Dispatching: pick the connection and queue, build the payload, push it (or run it now)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from qctl.bus.payloads import BulkPayloads, build_envelope, delay_seconds
from qctl.bus.unique import UniqueLocks, lock_spec
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.config import Config
from qctl.connections import ConnectionManager
from qctl.drivers.base import Driver, PushesInTransaction
from qctl.drivers.names import check_queue_name
from qctl.errors import SerializationError
from qctl.jobs.job import Job
from qctl.jobs.resolve import module_is_within
from qctl.payload.envelope import Envelope
from qctl.payload.models import take_encoded_classes
from qctl.payload.signing import Signer
from qctl.payload.values import take_encoded_enums
from qctl.transactions import Held, Scope, current_scope

RunInProcess = Callable[[str, str, bytes], None]

log = logging.getLogger("qctl.dispatch")


class Prepared(NamedTuple):
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


@dataclass(frozen=True, slots=True)
class Route:
    """Where a job goes: its connection's driver and kind, the queue, and whether the connection
    waits for an open tracked transaction (`after_commit` / `enqueue_in_transaction`)."""

    driver: Driver
    queue: str
    kind: str
    connection_waits: bool


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
        self._good_queues: set[tuple[str, str]] = set()

    def dispatch(self, job: Job) -> str | None:
        """Push the job on its connection and queue (or hold it for the tracked transaction's commit);
        returns its id (the payload uuid), or None for a unique job whose lock another queued job
        holds (nothing is pushed)."""
        spec = lock_spec(job) if self.locks is not None else None
        if spec is None:
            ready = self.prepare(job)
            if self.waits_for_nothing(ready.driver.connection_name, job):
                ready.driver.push(ready.payload, ready.queue, ready.delay)
            else:
                self.place([ready], job, job.display_name())
            return ready.uuid
        locks = self.locks
        assert locks is not None
        ready = self.prepare(job, extra=spec.field())
        if not locks.acquire(spec, ready.uuid):
            log.debug("%s not dispatched: a job with its unique id holds %s", job.display_name(), spec.key)
            return None

        def give_back() -> None:
            locks.release_quietly(spec.key, spec.via, ready.uuid)

        try:
            self.place([ready], job, job.display_name(), undo=give_back)
        except BaseException:
            give_back()
            raise
        return ready.uuid

    def bulk(self, jobs: Iterable[Job]) -> list[str]:
        """Push many jobs with one `driver.bulk` per connection (a round trip per chunk on Redis); returns their ids.

        Every payload is built and checked before anything is pushed, so a bad job pushes nothing.
        Jobs that wait for a tracked transaction are held (or written in it) as `dispatch()` would.
        What jobs of one class, connection and queue share is worked out once (`BulkPayloads`, `Route`).
        """
        payloads = BulkPayloads(self.signer)
        routes: dict[tuple[str | None, str | None], tuple[Route, list[tuple[str, str, float]]]] = {}
        pushes: dict[str, tuple[Driver, list[tuple[str, str, float]]]] = {}
        ids: list[str] = []
        held: list[tuple[Job, Prepared]] = []
        for job in jobs:
            key = (job._qctl_connection or job.connection, job._qctl_queue or job.queue)
            found = routes.get(key)
            if found is None:
                route = self.route(job)
                found = routes[key] = route, pushes.setdefault(route.driver.connection_name, (route.driver, []))[1]
            route, items = found
            uuid, payload, delay = self.write_in_bulk(job, route, payloads)
            ids.append(uuid)
            if _waits_for_nothing(job, route.connection_waits):
                items.append((payload, route.queue, delay))
            else:
                held.append((job, Prepared(route.driver, route.queue, payload, delay, uuid)))
        for job, ready in held:
            self.place([ready], job, job.display_name())
        for driver, items in pushes.values():
            if items:
                driver.bulk(items)
        return ids

    def write_in_bulk(self, job: Job, route: Route, payloads: BulkPayloads) -> tuple[str, str, float]:
        """(uuid, payload, delay) as `prepare` makes them, with what the job shares with others of its
        class written once."""
        queued = route.kind != "sync"  # a job run in this process skips the checks a worker needs
        written = payloads.write(job) if queued else None
        if written is None:
            envelope = self.envelope(job, allow_main=not queued)
            if queued:
                payloads.learn(job, envelope)
            written = envelope.uuid, envelope.to_json(self.signer)
        delay = 0.0 if job._qctl_delay is None else delay_seconds(job._qctl_delay, self.clock.time())
        return written[0], written[1], delay

    # --- now, after the commit, or inside the transaction ----------------------------

    def waits_for_nothing(self, connection: str, job: Any) -> bool:
        """True when the dispatch is pushed at once whatever transaction is open (the common case)."""
        config = self.config.connection(connection)
        return _waits_for_nothing(job, config.after_commit or config.enqueue_in_transaction)

    def place(
        self,
        items: list[Prepared],
        job: Any,
        name: str,
        *,
        connection: str | None = None,
        undo: Callable[[], None] = lambda: None,
        push: Callable[[], None] | None = None,
    ) -> bool:
        """Push now, hold for the tracked transaction's commit, or write the rows inside it; True
        unless it pushed now.

        `job` carries the choice (`after_commit()` / `before_commit()` / `in_transaction()`, else the
        connection's options); `undo` gives back what the dispatch took (a unique lock) when a rollback
        drops it; `push` replaces pushing `items` (a chain or batch starts in its own way, and is held
        until the commit even where a single job would be written inside the transaction).
        """
        if connection is None:
            connection = items[0].driver.connection_name if items else self.connection_for(job)
        push_now = push or (lambda: self.push_all(items))
        scope, inside = self.scope_for(connection, job, name, can_join=push is None and bool(items))
        if scope is None:
            push_now()
            return False
        label = f"{name} on connection {connection!r}"
        if inside:
            driver = items[0].driver
            assert isinstance(driver, PushesInTransaction)
            driver.push_in(scope.bind(), [ready.item for ready in items])
            scope.hold(Held(label, push=lambda: None, drop=undo))
            return True

        def push_after_commit() -> None:
            try:
                push_now()
            except BaseException:
                undo()
                raise

        bulk = self.push_all if push is None else None
        scope.hold(Held(label, push=push_after_commit, drop=undo, items=tuple(items), bulk=bulk))
        return True

    def scope_for(self, connection: str, job: Any, name: str, *, can_join: bool) -> tuple[Scope | None, bool]:
        """(the open tracked transaction to wait for or write in, whether to write in it)."""
        if job._qctl_after_commit is False:
            return None, False
        config = self.config.connection(connection)
        inside = job._qctl_in_transaction
        if inside is None and job._qctl_after_commit is None:
            inside = config.enqueue_in_transaction
        if inside and config.driver != "database":
            raise SerializationError(
                f"{name}: in_transaction() needs a database connection; {connection!r} is a {config.driver} connection"
            )
        waits = bool(inside) or (job._qctl_after_commit if job._qctl_after_commit is not None else config.after_commit)
        scope = current_scope() if waits else None
        if scope is None or not inside or not can_join:
            return scope, False
        assert config.url is not None
        # SQLAlchemy is loaded by now (a tracked transaction is open)
        from qctl.db.engines import redact, same_database

        if not same_database(config.url, scope.url()):
            raise SerializationError(
                f"{name}: cannot write the job inside the open transaction: connection {connection!r} is on "
                f"{redact(config.url)} but the transaction is on {redact(str(scope.url()))}"
            )
        return scope, True

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
        route = self.route(job, connection, queue)
        envelope = self.envelope(job, uuid=uuid, extra=extra, allow_main=route.kind == "sync")
        delay = delay_seconds(job._qctl_delay, self.clock.time())
        return Prepared(route.driver, route.queue, envelope.to_json(self.signer), delay, envelope.uuid)

    def route(self, job: Job, connection: str | None = None, queue: str | None = None) -> Route:
        name = self.connection_for(job, connection)
        config = self.config.connection(name)
        driver = self.connections.get(name)
        target = job._qctl_queue or job.queue or queue or driver.default_queue
        if (config.driver, target) not in self._good_queues:
            self._good_queues.add((config.driver, check_queue_name(target, config.driver, f"{type(job).__qualname__}: queue")))
        return Route(driver, target, config.driver, config.after_commit or config.enqueue_in_transaction)

    def connection_for(self, job: Job, fallback: str | None = None) -> str:
        return job._qctl_connection or job.connection or fallback or self.config.default

    def envelope(
        self, job: Job, *, uuid: str | None = None, extra: Mapping[str, Any] | None = None, allow_main: bool = False
    ) -> Envelope:
        """The job's payload, checked as every worker would check it (unless it runs in this process)."""
        take_encoded_classes()  # left over from a dispatch that failed half-way
        take_encoded_enums()
        envelope = build_envelope(job, self.signer, allow_main=allow_main, uuid=uuid, extra_data=extra)
        models = take_encoded_classes()
        if models:
            self.check_models(envelope, models, allow_main)
        enums = take_encoded_enums()
        if not allow_main:
            self.check_workers_may_run(envelope)
            if enums:
                self.check_value_classes(envelope, enums)
        return envelope

    def check_value_classes(self, envelope: Envelope, classes: set[type]) -> None:
        """Enum values travel as their class's path: a worker only imports classes defined in `app`."""
        for cls in classes:
            if not module_is_within(cls.__module__, self.config.app):
                allowed = ", ".join(repr(p) for p in self.config.app) or "nothing"
                raise SerializationError(
                    f"{envelope.command_name}: enum {cls.__module__}.{cls.__qualname__} is outside the app "
                    f"packages (app = [{allowed}] in {self.config.source}); workers only decode values of classes "
                    "defined there (queue its .value instead)"
                )

    def check_models(self, envelope: Envelope, classes: list[type], allow_main: bool) -> None:
        """Model attributes need `[models] session` to be fetched again, and classes a worker may import."""
        if self.config.models_session is None:
            raise SerializationError(
                f"{envelope.command_name}: holds a {classes[0].__qualname__} (an SQLAlchemy model), but no "
                f"`[models] session` is set in {self.config.source}; set it to the import path of a sessionmaker "
                "(or a function returning a Session) so workers can fetch it again"
            )
        if allow_main:
            return
        for cls in classes:
            if not module_is_within(cls.__module__, self.config.app):
                allowed = ", ".join(repr(p) for p in self.config.app) or "nothing"
                raise SerializationError(
                    f"{envelope.command_name}: model {cls.__module__}.{cls.__qualname__} is outside the app "
                    f"packages (app = [{allowed}] in {self.config.source}); workers only fetch models defined there"
                )

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
        if envelope.is_function and isinstance(envelope.command, dict):
            for path in envelope.command.get("catch", ()):
                self.check_module_may_run(path, envelope.command_name, f"its catch callback {path}: ")
        self.check_module_may_run(envelope.command_name, envelope.command_name)

    def check_module_may_run(self, path: str, name: str, what: str = "") -> None:
        module = path.partition(":")[0]
        if module in self._allowed_modules:
            return
        if module_is_within(module, self.config.app):
            self._allowed_modules.add(module)
            return
        allowed = ", ".join(repr(p) for p in self.config.app) or "nothing"
        raise SerializationError(
            f"{name}: {what}workers only run code from the app packages "
            f"(app = [{allowed}] in {self.config.source}); add {module.split('.')[0]!r} to `app` to allow it"
        )


def _waits_for_nothing(job: Any, connection_waits: bool) -> bool:
    """Whether the job is pushed at once whatever transaction is open, its connection waiting or not."""
    if job._qctl_after_commit is False:
        return True
    if job._qctl_after_commit or job._qctl_in_transaction:
        return False
    return not connection_waits
