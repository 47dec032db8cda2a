"""Dispatching batches, adding to them, and what a worker does when a batched job settles.

Dispatch: every job's payload is built and checked first (a bad job stores nothing),
then the batch is stored, `before` runs, and the jobs are registered as members and
queued: in one transaction when the queue is a database connection on the batch
store's database, else registered first and queued after (a crash in between leaves
the batch waiting for jobs that were never queued, never counting jobs that were not
registered). A batch dispatched by a chain link, and jobs added by a batched job, get
ids derived from that link or job, so running it again registers nothing twice and
only queues again what it cannot tell was queued.

Settling: BatchHooks records each member's outcome once (see `batch_store`), then runs
the callbacks the store says are due for that member, marking each done before the job
is acknowledged. The stored options (callback paths, a chain to continue) are signed
with the app key like payloads and verified before anything in them runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from qctl.bus.batch import Batch, PendingBatch
from qctl.bus.batch_store import BatchRecord, BatchStore, NewBatch, PushIn, Recorded
from qctl.bus.callbacks import invoke_all, paths_of
from qctl.bus.chain import BATCH_ID, ChainOptions, Chains, Entry, chained_entries
from qctl.bus.dispatcher import Dispatcher, Prepared
from qctl.bus.hooks import JobHooks, SettlingJob
from qctl.bus.retry import FailedJobRetrier, Retried, RetryProblem
from qctl.crashpoints import crash_point
from qctl.drivers.base import PushesInTransaction
from qctl.errors import QctlError, SignatureError
from qctl.jobs.job import CommitChoice, Job
from qctl.jobs.resolve import Resolver
from qctl.payload.envelope import derived_uuid, new_uuid
from qctl.payload.signing import SIGNATURE_FIELD, Signer

log = logging.getLogger("qctl.bus")
OPTIONS_CACHED = 1000


@dataclass(frozen=True)
class Plan:
    """A batch ready to store: its jobs as chain entries (a single job is a chain of one)."""

    id: str
    name: str
    options: dict[str, Any]
    items: list[list[Entry]]

    @property
    def members(self) -> list[str]:
        return [entry["uuid"] for item in self.items for entry in item]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "options": self.options, "items": self.items}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Plan:
        return cls(str(data["id"]), str(data.get("name") or ""), dict(data.get("options") or {}),
                   [list(item) for item in data.get("items") or []])


class Batches:
    def __init__(
        self,
        store: Callable[[], BatchStore],
        dispatcher: Dispatcher,
        chains: Chains,
        resolver: Resolver,
        signer: Signer | None,
    ) -> None:
        self._store = store
        self.dispatcher = dispatcher
        self.chains = chains
        self.resolver = resolver
        self.signer = signer
        self._options: dict[str, dict[str, Any] | None] = {}
        chains.batches = self

    @cached_property
    def store(self) -> BatchStore:
        return self._store()

    def record(self, batch_id: str) -> BatchRecord | None:
        return self.store.find(batch_id)

    def find(self, batch_id: str) -> Batch | None:
        found = self.store.find(batch_id)
        return Batch(found, self) if found is not None else None

    def recent(self, limit: int | None = None, unfinished: bool = False) -> list[Batch]:
        return [Batch(record, self) for record in self.store.recent(limit, unfinished)]

    def retry_failed(self, batch: Batch, retrier: FailedJobRetrier) -> tuple[list[Retried], list[RetryProblem]]:
        """`qctl retry-batch`: its failed jobs go back as `qctl retry` sends them; when one succeeds its
        member goes from failed to ok, so pending_jobs and failed_job_ids come right by themselves."""
        records, missing = [], []
        for uuid in batch.failed_job_ids:
            record = retrier.store.find(uuid)
            if record is None:
                missing.append(RetryProblem(uuid, "it is no longer in the failed-job store (forgotten or pruned)"))
            else:
                records.append(record)
        retried, problems = retrier.retry(records)
        return retried, missing + problems

    # --- building -----------------------------------------------------------------------

    def plan(self, pending: PendingBatch, batch_id: str, derived: bool) -> Plan:
        config = self.dispatcher.config
        options: dict[str, Any] = {
            kind: paths_of(fns, f"batch {kind} callback", config.app, config.source)
            for kind, fns in pending.callbacks.items() if fns
        }
        options.update(allowFailures=pending.allows_failures, connection=pending.connection, queue=pending.queue)
        items = self.items(pending.jobs, batch_id, options, derived)
        return Plan(batch_id, str(pending.name), options, items)

    def items(self, jobs: Sequence[Any], batch_id: str, options: dict[str, Any], derived: bool | str) -> list[list[Entry]]:
        """Each job or list of jobs as chain entries carrying the batch id; the batch's connection and
        queue beat the jobs' own (as Laravel's). `derived` gives ids derived from the batch (or from
        that string), else random ones."""
        routing = ChainOptions(options.get("connection"), options.get("queue"))
        items = []
        for n, job in enumerate(jobs):
            links = list(job) if isinstance(job, list | tuple) else [job]
            if not links:
                continue
            base = derived_uuid(derived if isinstance(derived, str) else batch_id, str(n)) if derived else new_uuid()
            entries = self.chains.entries(links, base, routing, batch_id=batch_id, queue=routing.queue)
            if routing.connection:
                for entry in entries:
                    entry["connection"] = routing.connection
            items.append(entries)
        return items

    def signed(self, options: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in options.items() if k != SIGNATURE_FIELD}
        if self.signer is not None:
            body[SIGNATURE_FIELD] = self.signer.sign(body)
        return body

    # --- dispatching --------------------------------------------------------------------

    def dispatch(self, pending: PendingBatch) -> Batch:
        """Store and queue the batch; inside a tracked transaction that it waits for, all of it (the
        record, `before`, the jobs) waits for the commit, and the Batch returned is what will be stored."""
        plan = self.plan(pending, new_uuid(), derived=False)
        launched: list[BatchRecord] = []
        first = pending.jobs[0] if pending.jobs else None
        first = first[0] if isinstance(first, list | tuple) and first else first
        choice = first if pending._qctl_after_commit is None and isinstance(first, CommitChoice) else pending
        fallback = self.dispatcher.connection_for(first) if isinstance(first, Job) else self.dispatcher.config.default
        connection = pending.connection or fallback
        held = self.dispatcher.place(
            [], choice, f"batch {plan.id} ({len(plan.members)} jobs)", connection=connection,
            push=lambda: launched.append(self.launch(plan, fresh=True)),
        )
        if not held:
            return Batch(launched[0], self)
        members = len(plan.members)
        now = int(self.dispatcher.clock.time())
        return Batch(BatchRecord(plan.id, plan.name, members, members, 0, (), plan.options, now), self)

    def launch(self, plan: Plan, fresh: bool, continuation: dict[str, Any] | None = None) -> BatchRecord:
        """Store the batch (if new), run `before`, register and queue its jobs. With `fresh` (app code,
        random ids) a failure deletes the batch again; a chain's batch keeps it for the link's next run."""
        options = self.signed({**plan.options, **({"chain": continuation} if continuation else {})})
        created = self.store.create(NewBatch(plan.id, plan.name, options))
        try:
            if created:
                self.run_callbacks(plan.id, options, "before")
            heads = [self.chains.link(item[0], item[1:], self.item_options(options)) for item in plan.items]
            self.add_prepared(plan.id, plan.members, heads, fresh_batch=fresh and created)
            if not plan.items and created:
                self.finish_empty(plan.id)
        except BaseException:
            if fresh and created:
                self.store.delete(plan.id)
            raise
        found = self.store.find(plan.id)
        if found is None:
            raise QctlError(f"batch {plan.id} vanished while it was dispatched")
        return found

    @staticmethod
    def item_options(options: dict[str, Any]) -> ChainOptions:
        return ChainOptions(options.get("connection"), options.get("queue"))

    def add_prepared(self, batch_id: str, members: list[str], heads: list[Prepared], fresh_batch: bool) -> None:
        """Register the members and queue the heads: in one transaction when the store can, else after."""
        driver = heads[0].driver if heads else None
        same = driver is not None and all(h.driver is driver for h in heads)
        if same and isinstance(driver, PushesInTransaction) and self.store.can_push_with(driver):
            self.store.add_jobs(batch_id, members, fresh_batch=fresh_batch, push_in=self.pushing(heads))
            return
        added = self.store.add_jobs(batch_id, members, fresh_batch=fresh_batch)
        if heads and (added or not fresh_batch):
            crash_point("batch_add_after_counter_before_push")
            self.dispatcher.push_all(heads)

    @staticmethod
    def pushing(heads: list[Prepared]) -> PushIn:
        by_uuid = {head.uuid: head for head in heads}
        driver = heads[0].driver
        assert isinstance(driver, PushesInTransaction)

        def push_in(conn: Any, new: list[str]) -> None:
            crash_point("batch_add_after_counter_before_push")
            driver.push_in(conn, [by_uuid[u].item for u in new if u in by_uuid])

        return push_in

    def add(self, record: BatchRecord, jobs: Sequence[Any], adder: Any = None) -> BatchRecord:
        """`batch.add(jobs)`: from a job of this batch the new ids derive from that job (it may run again)."""
        if not jobs:
            return record
        derived: bool | str = False
        if adder is not None and getattr(adder, "batch_id", None) == record.id:
            adder.batch_adds += 1
            derived = f"{adder.job_id}:add:{adder.batch_adds}"
        options = self.verified(record) or {}
        items = self.items(jobs, record.id, options, derived)
        heads = [self.chains.link(item[0], item[1:], self.item_options(options)) for item in items]
        self.add_prepared(record.id, [e["uuid"] for item in items for e in item], heads, fresh_batch=False)
        return self.store.find(record.id) or record

    def join(self, batch_id: str, uuids: list[str]) -> None:
        """Links prepended or appended to a chain inside a batch become members of it."""
        self.store.add_jobs(batch_id, uuids)

    def finish_empty(self, batch_id: str) -> None:
        """A batch of zero jobs finishes as it is dispatched: then and finally run at once."""
        self.store.mark_finished(batch_id)
        for kind in ("then", "finally"):
            self.run_due_callback(batch_id, kind, None)

    # --- a batch inside a chain ---------------------------------------------------------

    def plan_entry(self, pending: PendingBatch, uuid: str, options: ChainOptions) -> Entry:
        if not pending.connection and options.connection:
            pending.on_connection(options.connection)
        if not pending.queue and options.queue:
            pending.on_queue(options.queue)
        return {"uuid": uuid, "batch": self.plan(pending, uuid, derived=True).to_dict()}

    def dispatch_entry(self, entry: Entry, rest: list[Entry], options: ChainOptions) -> None:
        continuation = {"entries": rest, **options.to_data()} if rest or options.catch else None
        self.launch(Plan.of(entry["batch"]), fresh=False, continuation=continuation)

    # --- settling -----------------------------------------------------------------------

    def batch_for(self, running: SettlingJob) -> Batch | None:
        batch_id = batch_id_of(running)
        found = self.store.find(batch_id) if batch_id else None
        return Batch(found, self, adder=running) if found is not None else None

    def settled(self, batch_id: str, job_uuid: str, recorded: Recorded, exc: BaseException | None) -> None:
        if not recorded.known:
            return
        options = self.options_of(batch_id)
        if recorded.fresh and options and options.get("progress") and (exc is None or options.get("allowFailures")):
            self.run_callbacks(batch_id, options, "progress")
        for kind in recorded.due:
            self.run_due_callback(batch_id, kind, exc)
            crash_point("batch_after_callback_before_done")
            self.store.callback_done(batch_id, job_uuid, kind)

    def run_due_callback(self, batch_id: str, kind: str, exc: BaseException | None) -> None:
        record = self.store.find(batch_id)
        options = self.verified(record) if record is not None else None
        if record is None or options is None:
            return
        self.run_callbacks(batch_id, options, kind, exc, record)
        chain = options.get("chain")
        if not isinstance(chain, dict):
            return
        chain_options = ChainOptions.of(chain)
        entries = [e for e in chain.get("entries") or [] if isinstance(e, dict)]
        if kind == "finally" and record.cancelled_at is None and entries:
            self.continue_chain(entries, chain_options)
        elif kind == "catch" and chain_options.catch:
            self.chains.run_catch_once(chain_options.catch, f"batch:{batch_id}", exc or QctlError("batch failed"), self.resolver)

    def continue_chain(self, entries: list[Entry], options: ChainOptions) -> None:
        first, rest = entries[0], entries[1:]
        if "batch" in first:
            self.dispatch_entry(first, rest, options)
        else:
            self.chains.push_once(self.chains.link(first, rest, options))

    def run_callbacks(self, batch_id: str, options: dict[str, Any], kind: str, exc: BaseException | None = None,
                      record: BatchRecord | None = None) -> None:
        paths = options.get(kind) or []
        if not paths:
            return
        record = record or self.store.find(batch_id)
        if record is None:
            return
        batch = Batch(record, self)
        args: tuple[Any, ...] = (batch, exc) if kind == "catch" else (batch,)
        invoke_all(self.resolver, paths, f"batch {kind} callback", *args)

    def options_of(self, batch_id: str) -> dict[str, Any] | None:
        """A batch's verified options, read once per process (they never change)."""
        if batch_id not in self._options:
            if len(self._options) >= OPTIONS_CACHED:
                self._options.clear()
            record = self.store.find(batch_id)
            self._options[batch_id] = self.verified(record) if record is not None else None
        return self._options[batch_id]

    def verified(self, record: BatchRecord) -> dict[str, Any] | None:
        """The stored options, or None (logged) when their signature does not hold."""
        if self.signer is None:
            return record.options
        try:
            self.signer.verify(dict(record.options))
        except SignatureError as exc:
            log.error("batch %s: its stored options are refused (%s); no callback of it runs", record.id, exc)
            return None
        return record.options


def batch_id_of(running: SettlingJob) -> str | None:
    found = running.envelope.extra_data.get(BATCH_ID) if running.envelope is not None else None
    return found if isinstance(found, str) else None


@dataclass
class BatchHooks(JobHooks):
    """Record each batched job's outcome once, then run the callbacks that became its duty."""

    batches: Batches

    def after_success(self, running: SettlingJob, job: Job) -> None:
        batch_id = batch_id_of(running)
        if batch_id is None:
            return
        options = self.batches.options_of(batch_id)
        if options is not None and not options.get("progress"):
            guard = self.batches.store.ack_guard(running.reserved, batch_id, running.job_id)
            if guard is not None:  # recorded with the job's delete, in its round trip, when nothing is due
                running.reserved.guard = guard
                running.settle_before_ack = lambda: self.record_success(running, batch_id)
                return
        self.record_success(running, batch_id)

    def record_success(self, running: SettlingJob, batch_id: str) -> None:
        recorded = self.batches.store.record_success(batch_id, running.job_id)
        crash_point("batch_after_counter_before_ack")
        self.batches.settled(batch_id, running.job_id, recorded, None)

    def after_failure(self, running: SettlingJob, exc: BaseException) -> None:
        batch_id = batch_id_of(running)
        if batch_id is None or running.envelope is None:
            return
        later = [e["uuid"] for e in chained_entries(running.envelope.extra_data)
                 if (e.get("payload") or {}).get("data", {}).get(BATCH_ID) == batch_id]
        recorded = self.batches.store.record_failure(batch_id, running.job_id, later)
        self.batches.settled(batch_id, running.job_id, recorded, exc)

