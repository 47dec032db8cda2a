"""Run one reserved job: verify and decode it, check its attempts, call it, then settle it.

Settling follows Laravel's rules with qctl's ordering fixes: a job is deleted
only after it finished, was released, or its failure was recorded; a payload
that is not a runnable qctl job fails on its first reservation (no retry loop);
and when the failed store is down the job stays queued instead of being lost.
Every after-duty (chains, batches, unique locks, metrics) hangs on the settle hooks
(`qctl.bus.hooks`), called at fixed moments; the failure path is `qctl.worker.settle`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any

from qctl.bus.dispatcher import Prepared
from qctl.bus.hooks import BatchAccess, CompositeHooks, JobHooks
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.crashpoints import crash_point
from qctl.drivers.base import GuardedJob, PushesWithDelete, ReservedJob
from qctl.errors import (
    DriverError,
    JobTimedOutError,
    MaxAttemptsExceededError,
    ModelNotFoundError,
    PayloadError,
)
from qctl.events import (
    EventBus,
    JobExceptionOccurred,
    JobProcessed,
    JobProcessing,
    JobReleasedAfterException,
    JobTimedOut,
    WorkerNotice,
)
from qctl.failed.base import FailedJobStore
from qctl.jobs.job import Job
from qctl.jobs.resolve import Resolver
from qctl.middleware.pipeline import compose
from qctl.payload.envelope import Envelope, parse, uuid_of
from qctl.payload.models import ModelRef
from qctl.payload.signing import Signer
from qctl.worker.aio import LOOP_GRACE, AsyncJobTimedOut, EventLoops
from qctl.worker.failing import FailureRules
from qctl.worker.instantiate import instantiate
from qctl.worker.models import JobModels, ModelLoader
from qctl.worker.options import WorkerOptions
from qctl.worker.settle import STORE_DOWN_RETRY_SECONDS, JobFailer
from qctl.worker.timeout import TimeoutGuard, job_timeout

log = logging.getLogger("qctl.worker")

JOB_ENDING = (Exception, SystemExit, KeyboardInterrupt, GeneratorExit)
"""What a job (its middleware, handle() or failed()) may raise and have counted as its own failure;
the worker decides its own exit status in worker/stop.py only."""
__all__ = ["STORE_DOWN_RETRY_SECONDS", "JobRunner", "RunningJob"]


@dataclass(slots=True)
class RunningJob:
    """A reserved job while a worker holds it; the JobContext its Job instance talks to."""

    reserved: ReservedJob
    runner: JobRunner
    envelope: Envelope | None = None
    released: bool = False
    deleted: bool = False
    failed: bool = False
    exception: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    chain_prepended: list[Any] = field(default_factory=list)
    chain_appended: list[Any] = field(default_factory=list)
    follow_ups: list[Prepared] = field(default_factory=list)
    """Jobs to push together with this one's removal (a chain's next link)."""
    settle_before_ack: Callable[[], None] | None = None
    """Success bookkeeping a hook left to ride with the job's deferred delete (see GuardedJob); it runs
    before any other removal of the job."""
    batch_adds: int = 0
    """`batch().add()` calls so far: the n-th call's jobs get the same ids when the job runs again."""
    handled: bool = False
    """Its middleware let it through to `handle()` (a job they stopped is deleted without running)."""
    models: JobModels | None = None
    """The Session its model attributes were fetched with (closed once the job has settled)."""
    hard_timed_out: bool = False
    """This reservation took the job back from a worker its hard timeout ended (not a stall)."""
    refused: bool = False
    """Its payload was read but refused before running (unknown class, outside app, undecodable): its
    claim to a uuid is not trusted for the failed record."""
    deadline: Any = None
    """The timeout it runs under (what `timeout_guard` gave); an async job moves it back (`extend`)."""

    @property
    def record_uuid(self) -> str:
        """The uuid its failed record goes under: the payload's own, unless it was refused."""
        if self.envelope is None or self.refused:
            return uuid_of(self.reserved.raw, self.fallback_key)
        return self.envelope.uuid

    @property
    def job_id(self) -> str:
        if self.envelope is not None:
            return self.envelope.uuid
        return uuid_of(self.reserved.raw, self.fallback_key)

    @property
    def fallback_key(self) -> str:
        return f"{self.reserved.connection_name}:{self.reserved.queue}:{self.reserved.key}"

    @property
    def queue(self) -> str:
        return self.reserved.queue

    @property
    def connection_name(self) -> str:
        return self.reserved.connection_name

    @property
    def raw(self) -> bytes:
        return self.reserved.raw

    @property
    def display_name(self) -> str:
        return self.envelope.display_name if self.envelope else "(unreadable payload)"

    def payload(self) -> Any:
        try:
            return json.loads(self.reserved.raw)
        except ValueError:
            return None

    def attempts(self) -> int:
        return self.reserved.attempts

    def is_settled(self) -> bool:
        return self.released or self.deleted or self.failed

    def is_released(self) -> bool:
        return self.released

    def is_deleted(self) -> bool:
        return self.deleted

    def has_failed(self) -> bool:
        return self.failed

    def release(self, seconds: float = 0) -> None:
        if not self.is_settled():
            crash_point("before_release")
            self.reserved.release(seconds)
            self.released = True
            crash_point("after_release")
            self.runner.hooks.after_release(self)

    def delete(self) -> None:
        if not self.deleted:
            self.reserved.delete()
            self.deleted = True

    def fail(self, exc: BaseException) -> None:
        self.runner.fail(self, exc)

    def prepend_to_chain(self, job: Any) -> None:
        self.chain_prepended.append(job)

    def append_to_chain(self, job: Any) -> None:
        self.chain_appended.append(job)

    def push_with_ack(self, ready: Prepared) -> None:
        self.follow_ups.append(ready)

    @property
    def batch_id(self) -> str | None:
        found = self.envelope.extra_data.get("batchId") if self.envelope is not None else None
        return found if isinstance(found, str) else None

    def batch(self) -> Any:
        """The live Batch this job belongs to (None outside a batch)."""
        if self.batch_id is None or self.runner.batches is None:
            return None
        return self.runner.batches.batch_for(self)

    def cache(self, name: str | None = None) -> Any:
        if self.runner.caches is None:
            raise DriverError(f"job {self.job_id}: this runner has no cache store for its middleware")
        return self.runner.caches(name)


class JobRunner:
    def __init__(
        self,
        connection_name: str,
        *,
        signer: Signer | None,
        resolver: Resolver,
        failed_store: FailedJobStore,
        events: EventBus,
        options: WorkerOptions,
        rules: FailureRules | None = None,
        clock: Clock = SYSTEM_CLOCK,
        timeout_guard: TimeoutGuard = job_timeout,
        hooks: JobHooks | None = None,
        batches: BatchAccess | None = None,
        caches: Callable[[str | None], Any] | None = None,
        models: ModelLoader | None = None,
    ) -> None:
        self.connection_name = connection_name
        self.models = models
        self.caches = caches
        self.signer = signer
        self.resolver = resolver
        self.failed_store = failed_store
        self.events = events
        self.options = options
        self.clock = clock
        self.rules = rules or FailureRules(options, clock)
        self.timeout_guard = timeout_guard
        self.hooks = hooks if hooks is not None else CompositeHooks()
        self.batches = batches
        self.loops = EventLoops()
        self.failer = JobFailer(
            connection_name, failed_store, self.rules, resolver, signer, events, self.hooks, self.notice
        )

    def process(self, reserved: ReservedJob, defer_delete: bool = False) -> RunningJob:
        """Run one reserved job to a settled state (deleted, released or failed).

        With `defer_delete`, a job that ran to its end is left reserved (not settled) for the
        caller to delete: a worker folds that into its next reserve when the driver can.
        """
        running = RunningJob(reserved, self)
        if not self.is_runnable(running):
            return running
        try:
            self.run(running, defer_delete)
        finally:
            if running.models is not None:
                running.models.close()
        return running

    def run(self, running: RunningJob, defer_delete: bool) -> None:
        if self.events.wants(JobProcessing):
            self.events.dispatch(JobProcessing(self.connection_name, running))
        crash_point("before_handle")
        assert running.envelope is not None
        running.deadline = self.timeout_guard(self.timeout_for(running.envelope), lambda: self.timed_out(running),
                                              running.job_id)
        try:
            with running.deadline:
                job = self.instantiate_or_fail(running)
                if job is not None:
                    self.hooks.before_handle(running, job)
                    self.call(running, job)
                    if not (running.released or running.failed):
                        self.succeeded(running, job)
        except AsyncJobTimedOut as exc:  # its coroutine was cancelled at the timeout: the worker goes on
            self.notice(f"job {running.job_id} ({exc}); its coroutine was cancelled")
            self.settle_timed_out(running, JobTimedOutError(str(exc)))
        except JOB_ENDING as exc:  # SystemExit and KeyboardInterrupt from a job are its failure, not the worker's
            self.handle_exception(running, exc)
        else:
            if running.failed:
                return
            late = running.settle_before_ack is not None
            if late and (running.follow_ups or running.is_settled() or not defer_delete) and not self.settle_now(running):
                return
            if running.follow_ups:
                crash_point("after_handle_before_ack")
                self.ack_with_follow_ups(running)
            elif not running.is_settled():
                crash_point("after_handle_before_ack")
                if not defer_delete:
                    running.delete()
            if self.events.wants(JobProcessed):
                self.events.dispatch(JobProcessed(self.connection_name, running, time.monotonic() - running.started))

    def succeeded(self, running: RunningJob, job: Job) -> None:
        """The success duties; a store they need that is down puts the job back (it runs again later)."""
        try:
            self.hooks.after_success(running, job)
        except DriverError as exc:
            running.follow_ups = []
            self.notice(f"{exc}; job {running.job_id} ran but is put back until its success can be recorded")
            running.release(STORE_DOWN_RETRY_SECONDS)

    def settle_now(self, running: RunningJob) -> bool:
        """Run the bookkeeping left for the acknowledgement now (it will not ride with it)."""
        settle, running.settle_before_ack = running.settle_before_ack, None
        if isinstance(running.reserved, GuardedJob):
            running.reserved.guard = None
        try:
            if settle is not None:
                settle()
        except DriverError as exc:
            self.notice(f"{exc}; job {running.job_id} ran but is put back until its success can be recorded")
            running.release(STORE_DOWN_RETRY_SECONDS)
            return False
        return True

    @staticmethod
    def ack_with_follow_ups(running: RunningJob) -> None:
        """Remove the job and push what its hooks asked for: in one step when the store can (both or
        neither), else push first (at least once). A job that deleted itself only pushes."""
        ready = running.follow_ups
        reserved = running.reserved
        if not running.deleted and isinstance(reserved, PushesWithDelete):
            reserved.delete_and_push([r.item for r in ready])
        else:
            for item in ready:
                item.driver.push(item.payload, item.queue, item.delay)
            if not running.deleted:
                reserved.delete()
        running.follow_ups = []
        running.deleted = True

    def is_runnable(self, running: RunningJob) -> bool:
        """Parse the payload and check its attempts; a poison payload or a spent job fails here."""
        try:
            running.envelope = parse(running.raw, self.signer)
        except PayloadError as exc:
            self.fail(running, exc)
            return False
        stalls = self.rules.count_stall(running)
        if running.hard_timed_out:
            timed_out = self.rules.reason_to_fail_after_hard_timeout(running, self.timeout_for(running.envelope) or 0)
            if timed_out is not None:
                self.fail(running, JobTimedOutError(timed_out))
                return False
        reason = self.rules.reason_to_fail_before_running(running, stalls)
        if reason is not None:
            self.fail(running, MaxAttemptsExceededError(reason))
            return False
        return True

    def instantiate_or_fail(self, running: RunningJob) -> Job | None:
        """A payload naming an unknown, not-allowed or undecodable job fails at once: no retry loop."""
        assert running.envelope is not None
        try:
            job = instantiate(running.envelope, self.resolver, self.signer, self.fetcher(running))
        except ModelNotFoundError as exc:
            if not exc.delete_job:
                self.fail(running, exc)
                return None
            log.debug("job %s deleted: %s (delete_when_missing_models)", running.job_id, exc)
            running.delete()
            self.hooks.after_discard(running)
            return None
        except PayloadError as exc:
            running.refused = True
            self.fail(running, exc)
            return None
        except Exception as exc:  # an undecodable value that is not a PayloadError: refuse it the same way
            running.refused = True
            self.fail(running, PayloadError(f"{running.display_name}: payload cannot be decoded ({type(exc).__name__})"))
            return None
        job._qctl_ctx = running
        return job

    def fetcher(self, running: RunningJob) -> Callable[[ModelRef], Any] | None:
        """How this job's model attributes are fetched: one Session per job, opened at the first."""
        loader = self.models
        if loader is None:
            return None

        def fetch(ref: ModelRef) -> Any:
            if running.models is None:
                running.models = loader.for_job()
            return running.models.fetch(ref)

        return fetch

    def timeout_for(self, envelope: Envelope) -> float | None:
        return envelope.timeout if envelope.timeout is not None else self.options.timeout

    def timed_out(self, running: RunningJob) -> None:
        """Runs from the SIGALRM handler just before the process exits: settle the job if we can.

        The attempt was counted when the job was reserved; the job is failed when
        it fails on timeout or this was its last attempt, else released.
        """
        assert running.envelope is not None
        seconds = self.timeout_for(running.envelope)
        exc = JobTimedOutError(f"{running.display_name} has timed out after {seconds:g}s")
        self.notice(f"job {running.job_id} ({running.display_name}) timed out after {seconds:g}s; the worker exits")
        self.settle_timed_out(running, exc)

    def settle_timed_out(self, running: RunningJob, exc: JobTimedOutError) -> None:
        """A timed-out attempt: failed when the job fails on timeout or has no attempt left, else released."""
        assert running.envelope is not None
        self.events.dispatch(JobTimedOut(self.connection_name, running))
        running.exception = exc
        if running.is_settled():  # it released or deleted itself before running over: nothing to do
            return
        if running.envelope.fail_on_timeout or self.reason_to_fail_after(running, exc) is not None:
            self.fail(running, exc)
        else:
            running.release(self.rules.backoff(running))

    def call(self, running: RunningJob, job: Job) -> Any:
        """The job's middleware, first outermost, around `handle()` (the hooks told just before it)."""

        def handle(job: Job) -> Any:
            running.handled = True
            self.hooks.before_handler(running, job)
            result = job.handle()
            if type(result) is CoroutineType:  # `async def handle`, or a queued async function
                return self.await_job(running, result)
            return result

        return compose(job.middleware(), handle)(job)

    def await_job(self, running: RunningJob, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run an async job's coroutine on the worker's event loop; its timeout cancels it (see worker.aio).
        The worker's own deadline moves LOOP_GRACE later, for a loop that sync code blocks."""
        assert running.envelope is not None
        seconds = self.timeout_for(running.envelope)
        extend = getattr(running.deadline, "extend", None)
        if not seconds or extend is None:  # no timeout, or run in the caller's process: to its end
            return self.loops.run(coroutine)
        extend(LOOP_GRACE)
        left = seconds - (time.monotonic() - running.started)
        return self.loops.run(coroutine, left, f"{running.display_name} has timed out after {seconds:g}s")

    def handle_exception(self, running: RunningJob, exc: BaseException) -> None:
        """Laravel's handleJobException: fail when out of attempts, else release after the backoff."""
        running.exception = exc
        if not running.is_settled():  # a job that released itself and then raised is back on its queue
            reason = self.reason_to_fail_after(running, exc)
            if reason is not None:
                self.fail(running, exc)
        self.events.dispatch(JobExceptionOccurred(self.connection_name, running, exc))
        if not running.is_settled():
            delay = self.rules.backoff(running)
            running.release(delay)
            self.events.dispatch(JobReleasedAfterException(self.connection_name, running, exc, delay))

    def reason_to_fail_after(self, running: RunningJob, exc: BaseException) -> str | None:
        """Counts the exception (once), then asks the rules whether this attempt was the last."""
        return self.rules.reason_to_fail_after(running, exc, self.rules.count_exception(running))

    def fail(self, running: RunningJob, exc: BaseException) -> None:
        """Fail the job for good: see `qctl.worker.settle` for the order of the steps."""
        self.failer.fail(running, exc)

    def notice(self, message: str) -> None:
        self.events.dispatch(WorkerNotice(self.connection_name, message))
