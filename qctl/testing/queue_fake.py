"""`Queue.fake()`: jobs are built and checked as in production, then recorded instead of stored.

The fake sits at the transport: the connection manager hands out a recording wrapper around each
driver, so every path that queues a job (dispatch, bulk, a chain's head, a batch's members) is seen
with its resolved connection, queue and delay, and nothing else of the dispatcher changes. The job
instances are remembered as their envelopes are built, by payload uuid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self

from qctl.bus.unique import UniqueLocks
from qctl.config import ConnectionConfig
from qctl.drivers.base import Driver, ReservedJob
from qctl.drivers.memory import MemoryDriver, MemoryJob
from qctl.jobs.functions import is_queueable
from qctl.jobs.job import Job
from qctl.testing.patching import Patches
from qctl.testing.records import (
    Predicate,
    Record,
    is_function,
    listing,
    matches_target,
    predicate_and_times,
    same_chain,
    target_name,
)

if TYPE_CHECKING:
    from qctl.payload.envelope import Envelope
    from qctl.runtime import Runtime


class Faking:
    """Which jobs a fake takes over: all, only some (`fake([A, fn])`), or all but some (`except_`)."""

    def __init__(self, only: Iterable[Any] | None) -> None:
        self.only = list(only) if only is not None else None
        self.excepted: list[Any] = []

    def covers(self, job: Any) -> bool:
        if not isinstance(job, Job):
            return self.only is None and not self.excepted
        if any(matches_target(job, t) for t in self.excepted):
            return False
        return self.only is None or any(matches_target(job, t) for t in self.only)


class Recorded:
    """The assertions both fakes share, over a list of records; `verb` words the messages."""

    verb = "pushed"

    def __init__(self) -> None:
        self.records: list[Record] = []

    def _matching(self, target: Any, predicate: Predicate | None = None, sync: bool | None = None) -> list[Record]:
        found = [r for r in self.records if (target is None or matches_target(r.job, target))
                 and (sync is None or r.sync == sync)]
        if predicate is not None:
            found = [r for r in found if predicate(r.as_seen())]
        return found

    def _fail(self, message: str) -> None:
        raise AssertionError(f"{message}\n{listing(self.records, self.verb)}")

    def _expect(self, target: Any, times_or_predicate: int | Predicate | None, sync: bool | None = None) -> None:
        times, predicate = predicate_and_times(times_or_predicate)
        found = self._matching(target, predicate, sync)
        how = " matching the predicate" if predicate else ""
        kind = " synchronously" if sync else ""
        if times is None and not found:
            self._fail(f"expected {target_name(target)} to be {self.verb}{kind}{how}, but it was not")
        if times is not None and len(found) != times:
            self._fail(f"expected {target_name(target)} to be {self.verb}{kind} {times} time(s){how}, "
                       f"but it was {self.verb} {len(found)} time(s)")

    def _expect_none(self, target: Any, predicate: Predicate | None = None) -> None:
        found = self._matching(target, predicate)
        if found:
            how = " matching the predicate" if predicate else ""
            self._fail(f"expected {target_name(target)} not to be {self.verb}{how}, but it was {len(found)} time(s)")

    def _expect_chain(self, target: Any, chain: Sequence[Any]) -> None:
        heads = self._matching(target)
        if not heads:
            self._fail(f"expected {target_name(target)} to be {self.verb} with a chain, but it was not {self.verb}")
        if not any(same_chain(r.chained, chain) for r in heads):
            wanted = ", ".join(target_name(j) for j in chain) or "no chain"
            self._fail(f"expected {target_name(target)} to be {self.verb} with the chain [{wanted}], but no such chain")

    def _seen(self, target: Any, predicate: Predicate | None = None) -> list[Job]:
        return [r.as_seen() for r in self._matching(target, predicate)]


class Fake(Recorded):
    """What both fakes share: the jobs they take over, the instances behind the payloads they saw
    built (by uuid), the patches that undo them; a context manager, and `restore()` ends it."""

    def __init__(self, runtime: Runtime, jobs: Iterable[Any] | None) -> None:
        super().__init__()
        self.runtime = runtime
        self.faking = Faking(jobs)
        self.instances: dict[str, Job] = {}
        self._patches = Patches()

    def _remembering(self, real_envelope: Callable[..., Envelope]) -> Callable[..., Envelope]:
        """The dispatcher's `envelope`, also noting which instance each payload was built from."""

        def envelope(job: Job, **options: Any) -> Envelope:
            built = real_envelope(job, **options)
            self.instances[built.uuid] = job
            return built

        return envelope

    def except_(self, jobs: Iterable[Any]) -> Self:
        """Fake every job but these (they go through for real)."""
        self.faking.excepted.extend(jobs)
        return self

    def restore(self) -> None:
        """Stop faking: the runtime is as it was before `fake()`."""
        self._patches.undo()
        self.instances.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


class QueueFake(Fake):
    """Returned by `qctl.Queue.fake()`; a context manager, and `restore()` ends it."""

    def __init__(self, runtime: Runtime, jobs: Iterable[Any] | None = None) -> None:
        super().__init__(runtime, jobs)
        self.held: dict[str, HeldJobs] = {}
        """Per connection, what was faked, for `work_off()`: it runs these too."""
        self._drivers: dict[str, RecordingDriver] = {}
        self._install()

    # --- installing ----------------------------------------------------------------------

    def _install(self) -> None:
        from qctl.cache.memory import MemoryCacheStore

        dispatcher, connections = self.runtime.dispatcher, self.runtime.connections
        envelope, real_get = self._remembering(dispatcher.envelope), connections.get

        def get(name: str | None = None) -> Driver:
            driver = real_get(name)
            wrapper = self._drivers.get(driver.connection_name)
            if wrapper is None or wrapper.real is not driver:
                wrapper = self._drivers[driver.connection_name] = RecordingDriver(driver, self)
            return wrapper

        self._patches.set(self.runtime, "_qctl_queue_fake", self)
        self._patches.set(dispatcher, "envelope", envelope)
        self._patches.set(connections, "get", get)
        if dispatcher.locks is not None:  # unique locks stay honoured, in memory, for the fake's life
            store = MemoryCacheStore()

            def caches(name: str | None = None) -> MemoryCacheStore:
                return store

            locks = UniqueLocks(caches)
            self._patches.set(dispatcher, "locks", locks)
            self._patches.set(self.runtime, "unique_locks", locks)  # so work_off() gives them back there

    def restore(self) -> None:
        """Stop faking: the runtime is as it was before `fake()` (jobs held for `work_off()` are dropped)."""
        super().restore()
        self.held.clear()

    # --- recording -----------------------------------------------------------------------

    def takes(self, connection: str, payload: str, queue: str, delay: float) -> bool:
        """Record the payload when its job is faked (True), else leave it to the real driver."""
        body = json.loads(payload)
        uuid = str(body.get("uuid"))
        job = self.instances.get(uuid) or self._rebuilt(payload)
        if job is None or not self.faking.covers(job):
            return False
        chained = [self.instances.get(u) or u for u in _chained_uuids(body)]
        self.records.append(Record(job, connection, queue, delay, uuid, chained))
        self.held_for(connection).push(payload, queue, delay)
        return True

    def _rebuilt(self, payload: str) -> Job | None:
        """A payload the app did not dispatch itself (a chain's next link, a batch's added jobs, pushed
        by a job `work_off()` runs): its job as a worker would build it, or None when it cannot."""
        from qctl.payload.envelope import parse
        from qctl.worker.instantiate import instantiate

        try:
            return instantiate(parse(payload.encode("utf-8"), self.runtime.signer), self.runtime.resolver(),
                               self.runtime.signer)
        except Exception:  # model attributes, say: then it is not the fake's to judge, and goes through
            return None

    def held_for(self, connection: str) -> HeldJobs:
        """The faked pushes of a connection, kept so that `work_off()` can run them."""
        held = self.held.get(connection)
        if held is None:
            config = replace(self.runtime.config.connection(connection), driver="memory")
            held = self.held[connection] = HeldJobs(config, self)
        return held

    # --- assertions ----------------------------------------------------------------------

    def assert_pushed(self, job: Any, times_or_predicate: int | Predicate | None = None) -> None:
        """`assert_pushed(ShipOrder)`, `(ShipOrder, 2)`, `(ShipOrder, lambda job: job.order_id == 7)`,
        or `(lambda job: ...)` alone for any job."""
        if is_function(job) and not is_queueable(job) and times_or_predicate is None:
            job, times_or_predicate = None, job
        self._expect(job, times_or_predicate)

    def assert_pushed_on(self, queue: str, job: Any, predicate: Predicate | None = None) -> None:
        def on_queue(seen: Job) -> bool:
            return seen.queue == queue and (predicate is None or bool(predicate(seen)))

        if not self._matching(job, on_queue):
            self._fail(f"expected {target_name(job)} to be pushed on queue {queue!r}, but it was not")

    def assert_pushed_with_chain(self, job: Any, chain: Sequence[Any]) -> None:
        self._expect_chain(job, chain)

    def assert_pushed_without_chain(self, job: Any) -> None:
        self._expect_chain(job, [])

    def assert_not_pushed(self, job: Any, predicate: Predicate | None = None) -> None:
        self._expect_none(job, predicate)

    def assert_function_pushed(self, fn: Callable[..., Any], times_or_predicate: int | Predicate | None = None) -> None:
        """Laravel's assertClosurePushed: a queued call of the `@queueable` function `fn`."""
        self._expect(fn, times_or_predicate)

    def assert_nothing_pushed(self) -> None:
        if self.records:
            self._fail("expected nothing to be pushed")

    def assert_count(self, count: int) -> None:
        if len(self.records) != count:
            self._fail(f"expected {count} job(s) to be pushed, but {len(self.records)} were")

    def pushed(self, job: Any = None, predicate: Predicate | None = None) -> list[Job]:
        """The jobs pushed (of a class or function; all with None), as copies showing `queue`,
        `connection`, `delay` (seconds), `chained` and `job_uuid`."""
        return self._seen(job, predicate)

    def has_pushed(self, job: Any) -> bool:
        return bool(self._matching(job))


class HeldJobs(MemoryDriver):
    """Faked jobs waiting for `work_off()`; a chain's next link pushed with a held job's delete is
    recorded like any push (and held in its turn)."""

    def __init__(self, config: ConnectionConfig, fake: QueueFake) -> None:
        super().__init__(config)
        self.fake = fake

    def delete_and_push(self, job: MemoryJob, items: Sequence[tuple[str, str, float]]) -> bool:
        if not self.delete(job):
            return False
        for payload, queue, delay in items:
            if not self.fake.takes(self.connection_name, payload, queue, delay):
                self.fake.runtime.connections.get(self.connection_name).push(payload, queue, delay)
        return True


class RecordingDriver:
    """A driver whose pushes of faked jobs are recorded; everything else goes to the real one."""

    def __init__(self, real: Driver, fake: QueueFake) -> None:
        self.real = real
        self.fake = fake
        self.connection_name = real.connection_name
        self.default_queue = real.default_queue
        self.retry_after = real.retry_after

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        if not self.fake.takes(self.connection_name, payload, queue, delay):
            self.real.push(payload, queue, delay)

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        rest = [item for item in items if not self.fake.takes(self.connection_name, *item)]
        if rest:
            self.real.bulk(rest)

    def pop(self, queues: Sequence[str]) -> ReservedJob | None:
        return self.real.pop(queues)

    def size(self, queue: str) -> int:
        return self.real.size(queue)

    def clear(self, queue: str) -> int:
        return self.real.clear(queue)

    def close(self) -> None:
        self.real.close()


def _chained_uuids(body: dict[str, Any]) -> list[str]:
    data = body.get("data") or {}
    entries = data.get("chained") if isinstance(data, dict) else None
    return [str(e.get("uuid")) for e in entries or () if isinstance(e, dict)]
