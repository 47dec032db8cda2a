"""`Bus.fake()`: dispatches, chains and batches are built and checked as in production, then recorded.

The fake sits one level above `Queue.fake()`: on the dispatcher (`dispatch`, `bulk`,
`dispatch_sync`), on the chains (`start`, so a chain is seen as its head with the rest) and
on the batches (`dispatch`), so nothing is queued, run or stored for faked work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qctl.bus.batch import PendingBatch
from qctl.jobs.job import Job
from qctl.payload.envelope import new_uuid
from qctl.testing.interactions import FakeBatch
from qctl.testing.queue_fake import Fake
from qctl.testing.records import Predicate, Record, listing, name_of, target_name

if TYPE_CHECKING:
    from qctl.bus.chain import ChainOptions, Entry
    from qctl.runtime import Runtime


@dataclass
class BatchedRecord:
    """A faked `Bus.batch(...)`: what `assert_batched` predicates see."""

    name: str
    jobs: list[Any]
    options: dict[str, Any]
    batch: FakeBatch
    chained: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        jobs = ", ".join(name_of(j[0] if isinstance(j, list | tuple) and j else j) for j in self.jobs)
        return f"batch {self.name!r} [{jobs}]"


class BusFake(Fake):
    """Returned by `qctl.Bus.fake()`; a context manager, and `restore()` ends it."""

    verb = "dispatched"

    def __init__(self, runtime: Runtime, jobs: Iterable[Any] | None = None) -> None:
        super().__init__(runtime, jobs)
        self.batches: list[BatchedRecord] = []
        self._install()

    def _install(self) -> None:
        dispatcher, chains, batches = self.runtime.dispatcher, self.runtime.chains, self.runtime.batches
        envelope, real_dispatch, real_bulk = self._remembering(dispatcher.envelope), dispatcher.dispatch, dispatcher.bulk
        real_sync, real_start = dispatcher.dispatch_sync, chains.start

        def dispatch(job: Job) -> str | None:
            if not self.faking.covers(job):
                return real_dispatch(job)
            ready = dispatcher.prepare(job)
            self.records.append(Record(job, ready.driver.connection_name, ready.queue, ready.delay, ready.uuid))
            return ready.uuid

        def bulk(jobs: Iterable[Job]) -> list[str]:
            jobs = list(jobs)
            rest = real_bulk([job for job in jobs if not self.faking.covers(job)])
            ids = iter(rest)
            return [dispatch(job) or "" if self.faking.covers(job) else next(ids) for job in jobs]

        def dispatch_sync(job: Job) -> None:
            if not self.faking.covers(job):
                real_sync(job)
                return
            built = dispatcher.envelope(job, allow_main=True)
            queue = job._qctl_queue or job.queue or "default"
            self.records.append(Record(job, "sync", queue, 0.0, built.uuid, sync=True))

        def start(entries: list[Entry], options: ChainOptions) -> None:
            head = self.instances.get(str(entries[0]["uuid"]))
            if head is None or not self.faking.covers(head):
                real_start(entries, options)
                return
            first = entries[0]
            connection = first.get("connection") or options.connection or dispatcher.config.default
            queue = first.get("queue") or options.queue or dispatcher.connections.get(connection).default_queue
            chained = [self.instances.get(str(e["uuid"])) or e.get("batch") or e for e in entries[1:]]
            self.records.append(Record(head, connection, queue, float(first.get("delay") or 0),
                                       str(first["uuid"]), chained))

        def dispatch_batch(pending: PendingBatch) -> FakeBatch:
            plan = batches.plan(pending, new_uuid(), derived=False)  # every job built and checked
            fake = FakeBatch(plan.id, plan.name, total_jobs=len(plan.members), options=dict(plan.options))
            self.batches.append(BatchedRecord(plan.name, list(pending.jobs), pending.options, fake))
            return fake

        for target, name, value in ((dispatcher, "envelope", envelope), (dispatcher, "dispatch", dispatch),
                                    (dispatcher, "bulk", bulk), (dispatcher, "dispatch_sync", dispatch_sync),
                                    (chains, "start", start), (batches, "dispatch", dispatch_batch)):
            self._patches.set(target, name, value)

    # --- dispatches ----------------------------------------------------------------------

    def assert_dispatched(self, job: Any, times_or_predicate: int | Predicate | None = None) -> None:
        self._expect(job, times_or_predicate)

    def assert_dispatched_times(self, job: Any, times: int) -> None:
        self._expect(job, times)

    def assert_not_dispatched(self, job: Any, predicate: Predicate | None = None) -> None:
        self._expect_none(job, predicate)

    def assert_nothing_dispatched(self) -> None:
        if self.records:
            self._fail("expected nothing to be dispatched")

    def assert_dispatched_sync(self, job: Any, times_or_predicate: int | Predicate | None = None) -> None:
        self._expect(job, times_or_predicate, sync=True)

    def assert_not_dispatched_sync(self, job: Any) -> None:
        found = self._matching(job, sync=True)
        if found:
            self._fail(f"expected {target_name(job)} not to be dispatched synchronously, but it was {len(found)} time(s)")

    def assert_chained(self, chain: Sequence[Any]) -> None:
        """The first entry was dispatched with the rest as its chain (classes, or instances compared by attributes)."""
        if not chain:
            raise ValueError("assert_chained() needs the chain's jobs, head first")
        head = chain[0] if isinstance(chain[0], type) or not isinstance(chain[0], Job) else type(chain[0])
        self._expect_chain(head, list(chain[1:]))

    def assert_dispatched_with_chain(self, job: Any, chain: Sequence[Any]) -> None:
        self._expect_chain(job, chain)

    def assert_dispatched_without_chain(self, job: Any) -> None:
        self._expect_chain(job, [])

    def dispatched(self, job: Any = None, predicate: Predicate | None = None) -> list[Job]:
        """The jobs dispatched (sync ones too), as copies showing `queue`, `connection`, `delay`, `chained`."""
        return self._seen(job, predicate)

    def has_dispatched(self, job: Any) -> bool:
        return bool(self._matching(job))

    # --- batches ---------------------------------------------------------------------------

    def assert_batched(self, predicate: Callable[[BatchedRecord], Any]) -> None:
        """A batch was dispatched for which `predicate(batch)` holds (`.name`, `.jobs`, `.options`)."""
        if not any(predicate(b) for b in self.batches):
            self._fail_batches("expected a batch matching the predicate to be dispatched, but none was")

    def assert_batch_count(self, count: int) -> None:
        if len(self.batches) != count:
            self._fail_batches(f"expected {count} batch(es) to be dispatched, but {len(self.batches)} were")

    def assert_nothing_batched(self) -> None:
        if self.batches:
            self._fail_batches("expected no batch to be dispatched")

    def batched(self, predicate: Callable[[BatchedRecord], Any] | None = None) -> list[BatchedRecord]:
        return [b for b in self.batches if predicate is None or predicate(b)]

    def _fail_batches(self, message: str) -> None:
        lines = [f"  - {b.describe()}" for b in self.batches] or ["  (none)"]
        raise AssertionError(f"{message}\nbatches dispatched ({len(self.batches)}):\n" + "\n".join(lines)
                             + f"\n{listing(self.records, self.verb)}")
