"""The worker loop: should it take a job? → reserve and run one → should it stop?

The worker prints nothing; it emits events the `work` command renders. Time and
memory come through injectable seams so the loop can be tested without sleeping.
Anything slower than a dictionary lookup (the shared restart, maintenance and pause
flags, the memory reading, heartbeats) happens at most about once a second, so
the loop keeps its pace at thousands of jobs a second.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.drivers.base import Driver, GuardedJob, ReservedJob
from qctl.errors import DriverError, StoreRefusedError
from qctl.events import EventBus, Looping, WorkerNotice, WorkerStopping
from qctl.worker.heartbeat import Heartbeat, NoHeartbeat, WorkerStatus
from qctl.worker.lease import LeaseKeeper
from qctl.worker.metrics import JobMetrics, NoMetrics
from qctl.worker.options import WorkerOptions
from qctl.worker.runner import JobRunner, RunningJob
from qctl.worker.signals import IdleInterrupted, WorkerFlags, handle_worker_signals, idle
from qctl.worker.stop import EXIT_CODES, StopReason
from qctl.worker.throttle import Throttle
from qctl.worker.timeout import HARD_DEADLINE, hard_timeouts_left, worker_loop

if TYPE_CHECKING:
    from qctl.worker.gate import SlotGate
    from qctl.worker.pool import SlotPool, Tickets

log = logging.getLogger("qctl.worker")

BACKOFF_CAP_SECONDS = 30.0
MEMORY_CHECK_SECONDS = 1.0
PopAfter = Callable[[ReservedJob | None, Sequence[str]], ReservedJob | None]
WaitForJob = Callable[[Sequence[str], float], bool]
WaitAndPop = Callable[[Sequence[str], float], tuple[bool, ReservedJob | None]]
IDLE_CHECK_SECONDS = 1.0
"""The longest an idle worker blocks on the store before it looks at restart, down, --max-time and
signals again, whatever `block_for` says (0 included)."""


NOTHING_PAUSED: frozenset[str] = frozenset()


class WorkerControls(Protocol):
    """Shared flags an operator sets from any host (restart stamp, maintenance mode, paused queues)."""

    def restart_requested(self) -> bool: ...
    def is_down(self) -> bool: ...
    def paused_queues(self) -> frozenset[str]:
        """Which of the worker's queues are paused; the same object for as long as that does not change."""


class Watchdog(Protocol):
    def disarm(self) -> None: ...


class NoControls:
    def restart_requested(self) -> bool:
        return False

    def is_down(self) -> bool:
        return False

    def paused_queues(self) -> frozenset[str]:
        return NOTHING_PAUSED


def resident_megabytes() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


DRAIN_STORE_TRIES = 3
"""Reserves a draining worker (--once, --stop-when-empty) tries against a failing store, backing off
between them (1 s, 2 s), before it stops with exit 1."""


class StoreKeptFailing(Exception):
    """A draining worker gives up on a store that kept failing."""

    def __init__(self, cause: DriverError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class PopBackoff:
    """Capped exponential backoff for a store that keeps failing, with one notice per state change.

    Each delay is a random 50-100 % of the exponential step, so a pool of workers that lost the
    store together does not come back at it in lockstep."""

    cap: float = BACKOFF_CAP_SECONDS
    failures: int = 0
    since: float = 0.0
    jitter: Callable[[], float] = random.random
    """A number in [0, 1): where in its range each delay falls (a seam for tests)."""

    def next_delay(self) -> float:
        step = float(min(self.cap, 2 ** max(0, self.failures - 1)))
        return step * (0.5 + 0.5 * self.jitter())


@dataclass
class Worker:
    driver: Driver
    runner: JobRunner
    options: WorkerOptions
    events: EventBus
    controls: WorkerControls = field(default_factory=NoControls)
    heartbeat: Heartbeat = field(default_factory=NoHeartbeat)
    clock: Clock = SYSTEM_CLOCK
    memory_megabytes: Callable[[], float] = resident_megabytes
    flags: WorkerFlags = field(default_factory=WorkerFlags)
    jobs_processed: int = 0
    """Jobs taken (what --max-jobs counts); how each ended is counted below."""
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_released: int = 0
    hard_timed_out: Callable[[str], None] = lambda job_id: None
    """Notes (for whichever worker reclaims it) a job an earlier worker's hard timeout stopped."""
    witnesses: Path | None = None
    """Where this project's workers on this host keep their hard-timeout witness files (None: none)."""
    metrics: JobMetrics = field(default_factory=NoMetrics)
    watchdog: Watchdog = HARD_DEADLINE
    """The hard layer's watchdog this loop disarms before it waits (a slot of a pool leaves it to the pool)."""
    tickets: Tickets | None = None
    """A pool's shared --max-jobs count: a slot takes one before each reserve (None: count here)."""
    gate: SlotGate | None = None
    """A pool's count of open slots (`qctl.worker.gate`): this slot, `slot_number`, waits while closed."""
    slot_number: int = 0

    def __post_init__(self) -> None:
        self.queues = self.options.queues or (self.driver.default_queue,)
        self.taking: Sequence[str] = self.queues
        """The queues reserved from: `queues` less the paused ones."""
        self.paused_seen: frozenset[str] | None = None
        self.lease = LeaseKeeper(self.driver.retry_after)
        self.backoff = PopBackoff()
        self.current: ReservedJob | None = None
        self.current_since: float | None = None
        self.held_back: str | None = None
        self.memory_check = Throttle(MEMORY_CHECK_SECONDS, self.clock)
        # A job that ran to its end, deleted by the next reserve when the driver can fold the two.
        self.finished: ReservedJob | None = None
        self.finished_settle: Callable[[], None] | None = None
        """Bookkeeping that rides with the finished job's delete (a batch success); done first if it cannot."""
        self.pop_after: PopAfter | None = getattr(self.driver, "pop_after", None)
        self.wait_for_job: WaitForJob | None = getattr(self.driver, "wait_for_job", None)
        self.wait_and_pop: WaitAndPop | None = getattr(self.driver, "wait_and_pop", None)
        self.pool: SlotPool | None = None

    def run(self) -> int:
        """Process jobs until a stop condition holds; returns the process exit status."""
        witnessed = HARD_DEADLINE.witnessed(self.witnesses) if self.witnesses is not None else contextlib.nullcontext()
        with handle_worker_signals(self.flags), self.heartbeat.beating(self.status), witnessed, self.metrics.flushing():
            if self.witnesses is not None:
                self.note_hard_timeouts(self.witnesses)
            try:
                if self.options.once:
                    return self.stop(self.run_next_job())
                if self.options.concurrency > 1:
                    from qctl.worker.pool import SlotPool

                    self.pool = SlotPool(self)
                    return self.stop(self.pool.run())
                with worker_loop():
                    return self.stop(self.daemon())
            finally:
                self.delete_finished()
                self.lease.close()

    def daemon(self) -> StopReason:
        started = self.clock.monotonic()
        while True:
            try:
                # 1. Paused, in maintenance, every queue paused, or held back by a Looping listener: wait, then re-check.
                if not self.should_take_jobs():
                    self.wait(self.options.sleep or 1.0)
                    reason = self.stop_reason(started, had_job=True)
                    if reason is not None:
                        return reason
                    continue
                # 2. A slot of a pool waits while the jobs in flight need no more slots (holding no job).
                if self.gate is not None and not self.gate.is_open(self.slot_number):
                    self.delete_finished()
                    self.gate.wait_turn(self.slot_number)
                    reason = self.stop_reason(started, had_job=True)
                    if reason is not None:
                        return reason
                    continue
                # 3. Reserve the next job by queue priority and run it, or sleep when there is none.
                if self.tickets is not None and not self.tickets.take():
                    return StopReason.MAX_JOBS
                job = self.next_job()
                if job is None and not self.options.stop_when_empty:
                    job = self.wait_for_work()  # a blocking driver may hand back the job it reserved on waking
                if job is None and self.tickets is not None:
                    self.tickets.give_back()
                if job is not None:
                    self.jobs_processed += 1
                    self.run_job(job)
                    if self.options.rest > 0:
                        self.before_waiting()
                        self.clock.sleep(self.options.rest)
            except IdleInterrupted:
                return StopReason.INTERRUPTED
            except StoreKeptFailing as exc:
                return self.store_down(exc)
            # 4. Stop when any stop condition holds (first match wins).
            # a reserve the store failed is no proof the queue is empty (next_job gives up on its own)
            reason = self.stop_reason(started, had_job=job is not None or self.backoff.failures > 0)
            if reason is not None:
                return reason

    def run_next_job(self) -> StopReason:
        """--once: one job if there is one (under its timeout), else a single sleep."""
        try:
            if self.should_take_jobs():
                job = self.next_job()
                while job is None and self.backoff.failures:  # the store failed: again, until it gives up
                    job = self.next_job()
                if job is not None:
                    self.jobs_processed += 1
                    self.run_job(job)
                    return StopReason.ONCE
            self.wait(self.options.sleep)
        except IdleInterrupted:
            return StopReason.INTERRUPTED
        except StoreKeptFailing as exc:
            return self.store_down(exc)
        return StopReason.ONCE

    def store_down(self, failing: StoreKeptFailing) -> StopReason:
        self.notice(f"{failing.cause}; stopping: the store cannot be reached, nothing was run")
        return StopReason.STORE_DOWN

    def note_hard_timeouts(self, directory: Path) -> None:
        """Jobs an earlier worker on this host was stopped in by the hard timeout (its witness file):
        noted for whichever worker reclaims them, so that reservation is a timed-out attempt, not a stall."""
        for stopped in hard_timeouts_left(directory):
            self.hard_timed_out(stopped.job_id)
            self.notice(f"job {stopped.job_id} was stopped by its hard timeout (stuck in C code); worker pid "
                        f"{stopped.pid} on this host exited with it. Its stack:")
            log.warning("%s", stopped.dump.rstrip())

    def should_take_jobs(self) -> bool:
        self.held_back = self.why_not_take_jobs()
        return self.held_back is None

    def why_not_take_jobs(self) -> str | None:
        if self.flags.paused:
            return "paused"
        if not self.options.force and self.controls.is_down():
            return "down"
        if not self.take_from_unpaused_queues():
            return "queues paused"
        if self.events.has_listeners(Looping):
            results = self.events.dispatch(Looping(self.driver.connection_name, ",".join(self.queues)))
            if any(result is False for result in results):
                return "held"
        return None

    def take_from_unpaused_queues(self) -> bool:
        """Skip the paused queues (`qctl pause`); False when every queue of this worker is paused."""
        paused = self.controls.paused_queues()
        if paused is not self.paused_seen:
            before, self.paused_seen = self.paused_seen or NOTHING_PAUSED, paused
            self.taking = tuple(queue for queue in self.queues if queue not in paused)
            self.note_pause_change(before, paused)
        return bool(self.taking)

    def note_pause_change(self, before: frozenset[str], paused: frozenset[str]) -> None:
        if paused - before:
            rest = f"taking jobs from {','.join(self.taking)}" if self.taking else "no queue left to take jobs from"
            self.notice(f"queue {','.join(q for q in self.queues if q in paused - before)} paused; {rest}")
        if before - paused:
            self.notice(f"queue {','.join(q for q in self.queues if q in before - paused)} continued")

    def next_job(self) -> ReservedJob | None:
        try:
            job = self.reserve()
        except StoreRefusedError:
            raise  # a wrong password or a missing database index never heals: stop (exit 2) with the reason
        except DriverError as exc:
            self.note_store_failure(exc)
            self.watchdog.disarm()
            if self.draining and self.backoff.failures >= DRAIN_STORE_TRIES:
                raise StoreKeptFailing(exc) from exc
            with idle(self.flags):
                self.clock.sleep(self.backoff.next_delay())
            return None
        self.note_store_back()
        return job

    @property
    def draining(self) -> bool:
        """--once and --stop-when-empty report what they did: a store they cannot reach is a failure
        (exit 1), never an empty queue (a cron or CI drain would report success with nothing run)."""
        return self.options.once or self.options.stop_when_empty

    def note_store_back(self) -> None:
        if self.backoff.failures:
            down_for = self.clock.monotonic() - self.backoff.since
            self.notice(f"connection back after {down_for:.0f}s")
            self.backoff.failures = 0

    def reserve(self) -> ReservedJob | None:
        if self.finished is None or self.pop_after is None:
            return self.driver.pop(self.taking)
        finished, settle = self.finished, self.finished_settle
        job = self.pop_after(finished, self.taking)
        self.finished = self.finished_settle = None
        # a job left with bookkeeping carries a guard (GuardedJob); a protocol isinstance costs ~5 µs here
        if settle is not None and cast(GuardedJob, finished).held:
            self.settle_held(finished, settle)
            if job is None:  # settling may have queued work (the next link after a batch in a chain)
                return self.driver.pop(self.taking)
        return job

    def settle_held(self, finished: ReservedJob, settle: Callable[[], None]) -> None:
        """The store declined to settle the finished job with its delete: do it the long way, then delete."""
        self.lease.hold(finished)
        try:
            settle()
            finished.delete()
        except DriverError as exc:
            self.notice(f"{exc}; finished job {finished.key} may run again after retry_after")
        finally:
            self.lease.drop()

    def before_waiting(self) -> None:
        """Nothing runs while the worker waits: no job's watchdog may fire, no finished job may linger."""
        self.watchdog.disarm()
        self.delete_finished()

    def delete_finished(self) -> None:
        """The loop is about to wait or stop: delete the finished job now rather than with the next reserve."""
        job, self.finished = self.finished, None
        settle, self.finished_settle = self.finished_settle, None
        if job is not None:
            try:
                if settle is not None:
                    if isinstance(job, GuardedJob):
                        job.guard = None
                    settle()
                job.delete()
            except DriverError as exc:
                self.notice(f"{exc}; finished job {job.key} may run again after retry_after")

    def note_store_failure(self, exc: DriverError) -> None:
        if self.backoff.failures == 0:
            self.backoff.since = self.clock.monotonic()
            self.notice(f"{exc}; retrying with backoff up to {self.backoff.cap:.0f}s")
        self.backoff.failures += 1

    def run_job(self, job: ReservedJob) -> None:
        since = self.clock.time()
        self.current, self.current_since = job, since
        self.lease.hold(job)
        try:
            running = self.runner.process(job, defer_delete=self.pop_after is not None)
            self.count_outcome(running)
            self.metrics.record_job(self.driver.connection_name, running, self.current_since)
            if not running.is_settled():
                self.finished = job
                self.finished_settle = running.settle_before_ack
        except DriverError as exc:
            # The job stays reserved and comes back after retry_after: at least once, never lost.
            self.notice(f"{exc}; job {job.key} will be retried after retry_after")
        finally:
            self.lease.drop()
            self.current = None
            if self.gate is not None:
                self.gate.finished(self.slot_number, self.clock.time() - since)

    def count_outcome(self, running: RunningJob) -> None:
        if running.has_failed():
            self.jobs_failed += 1
        elif running.is_released():
            self.jobs_released += 1
        else:
            self.jobs_done += 1

    def wait_for_work(self) -> ReservedJob | None:
        """Idle: block on the store's wake-up signal when the driver can, else sleep --sleep seconds.

        A driver that reserves in the same round trip as it wakes returns that job: it is run like
        one reserved a moment before any pause or stop that came in during the wait.
        """
        self.before_waiting()
        with idle(self.flags):
            if self.wait_and_pop is not None:
                waited, job = self.wait_and_pop(self.taking, IDLE_CHECK_SECONDS)
                if job is not None:
                    self.note_store_back()
                if waited:
                    return job
            elif self.wait_for_job is not None and self.wait_for_job(self.taking, IDLE_CHECK_SECONDS):
                return None
            self.clock.sleep(self.options.sleep)
        return None

    def wait(self, seconds: float) -> None:
        self.before_waiting()
        with idle(self.flags):
            self.clock.sleep(seconds)

    def stop_reason(self, started: float, had_job: bool) -> StopReason | None:
        options = self.options
        if self.flags.should_quit:
            return StopReason.INTERRUPTED
        if options.memory and self.memory_check.due() and self.memory_megabytes() >= options.memory:
            return StopReason.MEMORY
        if self.controls.restart_requested():
            return StopReason.RESTART
        if options.stop_when_empty and not had_job:
            return StopReason.EMPTY
        if options.max_time and self.clock.monotonic() - started >= options.max_time:
            return StopReason.MAX_TIME
        if options.max_jobs and self.jobs_processed >= options.max_jobs:
            return StopReason.MAX_JOBS
        return None

    def status(self) -> WorkerStatus:
        """A snapshot for the heartbeat thread (plain attribute reads, no locking needed)."""
        if self.pool is not None:
            return self.pool.status()
        job, since = self.current, self.current_since
        if self.flags.should_quit:
            state = "stopping"
        elif job is not None:
            state = "working"
        else:
            state = self.held_back or "idle"
        counts = (self.jobs_done, self.jobs_failed, self.jobs_released)
        if job is None:
            return WorkerStatus(state, None, None, None, *counts)
        return WorkerStatus(state, job.raw, job.queue, since, *counts)

    def stop(self, reason: StopReason) -> int:
        status = EXIT_CODES[reason]
        self.events.dispatch(WorkerStopping(status, reason.value))
        return status

    def notice(self, message: str) -> None:
        self.events.dispatch(WorkerNotice(self.driver.connection_name, message))
