"""Job chains: only the head is queued; the rest of the chain travels inside its payload.

A link's payload carries, inside `data` and covered by its signature, Laravel's
fields: `chained` (the later links, each an entry holding its unsigned payload and its
own connection, queue and delay, or a batch to dispatch), `chainConnection`,
`chainQueue` and `chainCatchCallbacks`. Every link gets its uuid when it joins the
chain, derived from the chain (or from the link that prepended or appended it), so a
link that runs again hands on exactly the same successor.

When a link succeeds, the next one is pushed together with the current one's removal:
in one transaction (database) or one script (Redis, keys in one slot) when both live
on the same connection, so no link is lost or doubled. Across connections it is at
least once: the successor is pushed, marked in the cache, and only then is the current
link removed; a link that runs again after the mark does not push it a second time.
A link that fails for good stops the chain and runs the chain's `catch(exc)` callbacks
once (a cache mark, written after they ran, keeps a redelivery from running them again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

from qctl.bus.callbacks import callback_path, invoke_all, paths_of
from qctl.bus.dispatcher import Dispatcher, Prepared
from qctl.bus.hooks import JobHooks, SettlingJob
from qctl.bus.payloads import delay_seconds
from qctl.cache import keys
from qctl.cache.base import CacheStore
from qctl.crashpoints import crash_point
from qctl.drivers.names import check_queue_name
from qctl.errors import DriverError, SerializationError
from qctl.jobs.functions import queued
from qctl.jobs.job import CommitChoice, Job
from qctl.jobs.resolve import Resolver
from qctl.payload.envelope import _ENCODE, derived_uuid, new_uuid, pushed_at_now
from qctl.payload.signing import SIGNATURE_FIELD, Signer

if TYPE_CHECKING:
    from qctl.bus.batch import PendingBatch

log = logging.getLogger("qctl.bus")

CHAINED = "chained"
CHAIN_CONNECTION = "chainConnection"
CHAIN_QUEUE = "chainQueue"
CHAIN_CATCH = "chainCatchCallbacks"
BATCH_ID = "batchId"
MARK_SECONDS = 7 * 86_400
"""How long the cache remembers that a link's successor was pushed, or its chain's catch ran."""

Entry = dict[str, Any]


@dataclass(frozen=True)
class ChainOptions:
    """What every link of a chain carries besides the links themselves."""

    connection: str | None = None
    queue: str | None = None
    catch: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: Any) -> ChainOptions:
        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        catch = data.get(CHAIN_CATCH)
        paths = tuple(p for p in catch if isinstance(p, str)) if isinstance(catch, list) else ()
        return cls(text(CHAIN_CONNECTION), text(CHAIN_QUEUE), paths)

    def to_data(self) -> dict[str, Any]:
        return {CHAIN_CONNECTION: self.connection, CHAIN_QUEUE: self.queue, CHAIN_CATCH: list(self.catch)}


class BatchLinks(Protocol):
    """What the chain needs of batches (a batch inside a chain): given by `qctl.bus.batching`."""

    def plan_entry(self, pending: PendingBatch, uuid: str, options: ChainOptions) -> Entry: ...
    def dispatch_entry(self, entry: Entry, rest: list[Entry], options: ChainOptions) -> None: ...
    def join(self, batch_id: str, uuids: list[str]) -> None: ...


def as_job(item: Any) -> Job:
    if isinstance(item, Job):
        return item
    if callable(item):
        return queued(item)
    raise SerializationError(f"a chain holds jobs, queueable functions and batches, not {type(item).__name__}")


class Chains:
    """Builds chain entries and pushes the next link; the worker's ChainHooks and Bus.chain use it."""

    def __init__(self, dispatcher: Dispatcher, signer: Signer | None, cache: Callable[[], CacheStore]) -> None:
        self.dispatcher = dispatcher
        self.signer = signer
        self.cache = cache
        self.batches: BatchLinks | None = None

    # --- building -----------------------------------------------------------------------

    def entries(self, items: Sequence[Any], base: str, options: ChainOptions, batch_id: str | None = None,
                queue: str | None = None) -> list[Entry]:
        """Every link checked now (a job that cannot be queued fails the whole dispatch); `queue` overrides
        the links' own (a batch's `on_queue`)."""
        from qctl.bus.batch import PendingBatch

        found = []
        for index, item in enumerate(items):
            uuid = derived_uuid(base, str(index))
            if isinstance(item, PendingBatch):
                if batch_id is not None:
                    raise SerializationError("a batch inside a chain inside a batch is not supported")
                found.append(self.batch_links().plan_entry(item, uuid, options))
            else:
                found.append(self.job_entry(as_job(item), uuid, batch_id, queue))
        return found

    def job_entry(self, job: Job, uuid: str, batch_id: str | None = None, queue: str | None = None) -> Entry:
        extra = {BATCH_ID: batch_id} if batch_id else None
        envelope = self.dispatcher.envelope(job, uuid=uuid, extra=extra)
        delay = job._qctl_delay
        return {
            "uuid": envelope.uuid,
            "payload": envelope.to_dict(),
            "connection": job._qctl_connection or job.connection,
            "queue": queue or job._qctl_queue or job.queue,
            "delay": None if delay is None else delay_seconds(delay, self.dispatcher.clock.time()),
        }

    def batch_links(self) -> BatchLinks:
        if self.batches is None:
            raise SerializationError("batches are not available here")
        return self.batches

    # --- pushing ------------------------------------------------------------------------

    def link(self, entry: Entry, rest: Sequence[Entry], options: ChainOptions) -> Prepared:
        """The entry as a payload ready to push, carrying the rest of its chain."""
        body = {k: v for k, v in entry["payload"].items() if k != SIGNATURE_FIELD}
        data = dict(body["data"])
        for name in (CHAINED, CHAIN_CONNECTION, CHAIN_QUEUE, CHAIN_CATCH):
            data.pop(name, None)
        if rest:
            data[CHAINED] = list(rest)
        if rest or options.catch:
            data.update(options.to_data())
        body["data"] = data
        body["pushedAt"] = pushed_at_now()
        if self.signer is not None:
            body[SIGNATURE_FIELD] = self.signer.sign(body)
        connection = entry.get("connection") or options.connection or self.dispatcher.config.default
        driver = self.dispatcher.connections.get(connection)
        queue = entry.get("queue") or options.queue or driver.default_queue
        check_queue_name(queue, self.dispatcher.config.connection(connection).driver, "chain link: queue")
        return Prepared(driver, queue, _ENCODE(body), float(entry.get("delay") or 0), str(entry["uuid"]))

    def start(self, entries: list[Entry], options: ChainOptions) -> None:
        """Queue the first link (or dispatch it, when it is a batch) with the rest of the chain."""
        first, rest = entries[0], entries[1:]
        if "batch" in first:
            self.batch_links().dispatch_entry(first, rest, options)
            return
        ready = self.link(first, rest, options)
        ready.driver.push(ready.payload, ready.queue, ready.delay)

    def push_successor(self, entry: Entry, rest: list[Entry], options: ChainOptions, current: SettlingJob) -> None:
        """After `current` succeeded: its successor goes with its removal when they share a connection."""
        if "batch" in entry:
            self.batch_links().dispatch_entry(entry, rest, options)
            return
        ready = self.link(entry, rest, options)
        if ready.driver.connection_name == current.connection_name:
            current.push_with_ack(ready)
            return
        self.push_once(ready)

    def push_once(self, ready: Prepared) -> None:
        """At least once across stores: a successor marked as pushed is not pushed again."""
        mark = keys.chain_link(ready.uuid)
        if self._marked(mark):
            return
        ready.driver.push(ready.payload, ready.queue, ready.delay)
        crash_point("chain_after_push_before_mark")
        self._mark(mark)

    def run_catch_once(self, paths: Sequence[str], uuid: str, exc: BaseException, resolver: Resolver) -> None:
        mark = keys.chain_catch(uuid)
        if self._marked(mark):
            return
        invoke_all(resolver, paths, "chain catch callback", exc)
        self._mark(mark)

    def _marked(self, key: str) -> bool:
        try:
            return self.cache().get(key) is not None
        except DriverError as exc:
            log.warning("%s; cannot tell whether %s was done already, doing it", exc, key)
            return False

    def _mark(self, key: str) -> None:
        try:
            self.cache().put(key, "1", MARK_SECONDS)
        except DriverError as exc:
            log.warning("%s; could not remember %s (a redelivery may do it again)", exc, key)


class PendingChain(CommitChoice):
    """`Bus.chain([...]).on_connection(c).on_queue(q).catch(fn).dispatch()`.

    Inside a tracked transaction the chain is held (or not) as a whole: by its own `after_commit()` /
    `before_commit()`, else by its first job's, else by the connection's `after_commit`.
    """

    def __init__(self, jobs: Sequence[Any], chains: Callable[[], Chains], app: Callable[[], tuple[tuple[str, ...], str]]) -> None:
        self.jobs = list(jobs)
        self._chains = chains
        self._app = app
        self.connection: str | None = None
        self.queue: str | None = None
        self.catch_callbacks: list[Callable[..., Any]] = []
        self._delay: Any = None

    def on_connection(self, connection: str) -> Self:
        self.connection = connection
        return self

    def on_queue(self, queue: str) -> Self:
        self.queue = queue
        return self

    def catch(self, callback: Callable[[BaseException], Any]) -> Self:
        """Run `callback(exc)` when a link fails for good (a module-level function inside `app`)."""
        callback_path(callback, "chain catch callback")  # a lambda is refused here; the allow-list at dispatch
        self.catch_callbacks.append(callback)
        return self

    def delay(self, delay: Any) -> Self:
        """Delay the first link (seconds, a timedelta or an aware datetime)."""
        self._delay = delay
        return self

    def options(self) -> ChainOptions:
        app, source = self._app()
        return ChainOptions(self.connection, self.queue, tuple(paths_of(self.catch_callbacks, "chain catch callback", app, source)))

    def dispatch(self) -> str:
        """Queue the head; returns its id (a batch's id when the chain starts with a batch)."""
        if not self.jobs:
            raise SerializationError("Bus.chain(): a chain needs at least one job")
        chains = self._chains()
        entries = chains.entries(self.jobs, new_uuid(), self.options())
        if self._delay is not None and "payload" in entries[0]:
            entries[0]["delay"] = delay_seconds(self._delay, chains.dispatcher.clock.time())
        options = self.options()
        first = self.jobs[0]
        choice = first if self._qctl_after_commit is None and isinstance(first, CommitChoice) else self
        connection = entries[0].get("connection") or options.connection or chains.dispatcher.config.default
        chains.dispatcher.place(
            [], choice, f"chain of {len(self.jobs)} starting with {_name_of(first)}",
            connection=connection, push=lambda: chains.start(entries, options),
        )
        return str(entries[0]["uuid"])


@dataclass
class ChainHooks(JobHooks):
    """After a link settles: push its successor, or run the chain's catch callbacks."""

    chains: Chains
    resolver: Resolver

    def after_success(self, running: SettlingJob, job: Job) -> None:
        envelope = running.envelope
        if envelope is None:
            return
        data = envelope.extra_data
        entries = self.changed_chain(running, job, chained_entries(data))
        if not entries:
            return
        self.chains.push_successor(entries[0], entries[1:], ChainOptions.of(data), running)

    def changed_chain(self, running: SettlingJob, job: Job, entries: list[Entry]) -> list[Entry]:
        """The rest of the chain after `prepend_to_chain` / `append_to_chain` calls made during handle()."""
        prepended, appended = running.chain_prepended, running.chain_appended
        if not prepended and not appended:
            return entries
        batch_id = running.envelope.extra_data.get(BATCH_ID) if running.envelope else None
        base = running.job_id
        front = [self.chains.job_entry(as_job(j), derived_uuid(base, f"prepend:{n}"), batch_id)
                 for n, j in enumerate(prepended)]
        back = [self.chains.job_entry(as_job(j), derived_uuid(base, f"append:{n}"), batch_id)
                for n, j in enumerate(appended)]
        if batch_id and self.chains.batches is not None:
            self.chains.batches.join(str(batch_id), [e["uuid"] for e in front + back])
        return list(reversed(front)) + entries + back

    def after_failure(self, running: SettlingJob, exc: BaseException) -> None:
        envelope = running.envelope
        if envelope is None:
            return
        paths = ChainOptions.of(envelope.extra_data).catch
        if paths:
            self.chains.run_catch_once(paths, running.job_id, exc, self.resolver)


def chained_entries(data: Any) -> list[Entry]:
    entries = data.get(CHAINED)
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("uuid"), str)
            and (isinstance(e.get("payload"), dict) or isinstance(e.get("batch"), dict))]


def _name_of(link: Any) -> str:
    if isinstance(link, Job):
        return link.display_name()
    return "a batch" if hasattr(link, "callbacks") else type(link).__qualname__
