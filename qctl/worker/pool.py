"""`qctl work --concurrency N`: N job slots in one worker process.

Each slot is a thread running the single-slot loop (`Worker.daemon`) of a Worker that shares
the process's driver, runner, events, controls and metrics: it reserves by the same strict
queue priority, folds a finished job's delete into its next reserve, and keeps to its own
connection (the drivers and stores pin one per thread). `async def` jobs run on one event loop
thread, each slot waiting for its own job's coroutine (`qctl.worker.aio`).

The process's own thread handles what concerns all slots: signals and the stop conditions
(--max-time, --memory, restart; --max-jobs is a shared count of jobs taken), the heartbeat,
the lease renewals (one round trip for every job in flight, `SharedLeases`) and the timeouts
(`SlotDeadlines`). On a stop every slot finishes the job it has, then the worker exits.

A thread cannot be stopped, so a sync job past its timeout ends the process as it does with
one slot: its timeout is recorded (failed, or released for its next attempt), every other job
in flight is released at once (fenced: each runs again on another worker, at least once,
never lost), and the worker exits 1 for its process manager to start a fresh one.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING

from qctl.clock import Clock
from qctl.drivers.base import RenewsMany
from qctl.errors import DriverError
from qctl.events import WorkerNotice
from qctl.worker.deadlines import InFlight, SlotDeadlines
from qctl.worker.gate import OPEN_AFTER, SlotGate
from qctl.worker.heartbeat import SlotJob, WorkerStatus
from qctl.worker.lease import SharedLeases
from qctl.worker.stop import StopReason
from qctl.worker.timeout import EXIT_TIMED_OUT, HARD_DEADLINE

if TYPE_CHECKING:
    from qctl.worker.worker import Worker

log = logging.getLogger("qctl.worker")

WATCH_SECONDS = 0.5
"""The longest the main thread waits before it looks at signals and the stop conditions again."""


class Tickets:
    """--max-jobs shared by the slots: a slot takes a ticket before it reserves, and gives it back
    when it found no job, so the process takes exactly that many jobs."""

    def __init__(self, total: int) -> None:
        self.left = total
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.left += 1


class SlotFlags:
    """A slot's view of the worker's flags: quit when the worker quits or the pool stops; its own
    `idle` (no signal handler raises into a slot thread: its waits are short, or end on `stopping`)."""

    def __init__(self, shared: object, stopping: threading.Event) -> None:
        self.shared, self.stopping, self.idle = shared, stopping, False

    @property
    def should_quit(self) -> bool:
        return self.stopping.is_set() or bool(getattr(self.shared, "should_quit", False))

    @property
    def paused(self) -> bool:
        return bool(getattr(self.shared, "paused", False))


class SlotClock(Clock):
    """The worker's clock, with sleeps that end as soon as the pool stops."""

    def __init__(self, clock: Clock, stopping: threading.Event) -> None:
        self.clock, self.stopping = clock, stopping

    def time(self) -> float:
        return self.clock.time()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)


class NoWatchdog:
    """A slot never touches the hard watchdog: SlotDeadlines keeps it for every slot."""

    def disarm(self) -> None:
        return None


class SlotPool:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stopping = threading.Event()
        self.deadlines = SlotDeadlines()
        driver = worker.driver
        self.leases = SharedLeases(driver.retry_after, driver.renew_many if isinstance(driver, RenewsMany) else None)
        self.tickets = Tickets(worker.options.max_jobs) if worker.options.max_jobs else None
        self.gate = SlotGate(worker.options.concurrency, self.stopping)
        self.slots = [self.slot(number) for number in range(worker.options.concurrency)]
        self.threads: dict[int, Worker] = {}
        self.ended: list[StopReason] = []
        self.errors: list[BaseException] = []

    def slot(self, number: int) -> Worker:
        from qctl.worker.worker import Worker

        w = self.worker
        options = dataclasses.replace(w.options, concurrency=1, max_jobs=0, max_time=0, memory=0)
        slot = Worker(w.driver, w.runner, options, w.events, controls=w.controls, clock=SlotClock(w.clock, self.stopping),
                      flags=SlotFlags(w.flags, self.stopping), metrics=w.metrics,  # type: ignore[arg-type]
                      watchdog=NoWatchdog(), tickets=self.tickets, gate=self.gate, slot_number=number)
        slot.lease = self.leases.slot(number)  # type: ignore[assignment]
        return slot

    def run(self) -> StopReason:
        runner = self.worker.runner
        runner.timeout_guard = self.deadlines.guard
        runner.loops.threaded = True
        self.leases.start()
        threads = [threading.Thread(target=self.run_slot, args=(slot,), name=f"qctl-slot-{n}", daemon=True)
                   for n, slot in enumerate(self.slots)]
        for thread in threads:
            thread.start()
        try:
            reason = self.watch(threads)
        finally:
            self.stop_slots()
            self.leases.close()
            self.deadlines.close()
            runner.loops.close()
        if self.errors:
            raise self.errors[0]
        return reason

    def run_slot(self, slot: Worker) -> None:
        self.threads[threading.get_ident()] = slot
        try:
            self.ended.append(slot.daemon())
        except BaseException as exc:  # a store that refuses for good, a bug: the worker stops with it
            self.errors.append(exc)
            self.stop_slots()
        finally:
            slot.delete_finished()
            slot.lease.drop()
            self.gate.open_up()  # the closed slots run their loops and end too (an empty queue, a stop)
            self.deadlines.notify()

    def stop_slots(self) -> None:
        self.stopping.set()
        self.gate.open_up()

    def watch(self, threads: list[threading.Thread]) -> StopReason:
        """Until every slot has ended: take over a job past its timeout; stop the slots on a stop condition."""
        started = self.worker.clock.monotonic()
        reason: StopReason | None = None
        while any(thread.is_alive() for thread in threads):
            overdue = self.deadlines.next_overdue(WATCH_SECONDS if self.gate.fully_open else OPEN_AFTER)
            if overdue is not None:
                self.take_over(overdue)
            self.gate.widen(self.busy)
            if reason is None:
                reason = self.worker.stop_reason(started, had_job=True)  # its own counts stay 0: --max-jobs is the tickets
                if reason is not None:
                    self.stop_slots()
        for thread in threads:
            thread.join()
        return reason or self.slots_reason()

    def busy(self, number: int) -> bool:
        """Slot `number` runs a job that has run longer than OPEN_AFTER (plain attribute reads)."""
        slot = self.slots[number]
        since = slot.current_since
        return slot.current is not None and since is not None and self.worker.clock.time() - since >= OPEN_AFTER

    def slots_reason(self) -> StopReason:
        """Why the slots ended by themselves: a store that stayed down wins, else the first to end."""
        if StopReason.STORE_DOWN in self.ended:
            return StopReason.STORE_DOWN
        return self.ended[0] if self.ended else StopReason.INTERRUPTED

    def take_over(self, overdue: InFlight) -> None:
        """A slot's job ran past its timeout: record it, release the others, exit 1 (see the module)."""
        self.stop_slots()
        witness = HARD_DEADLINE.witness
        if witness is not None:  # the bookkeeping gets `grace` seconds, then the hard layer ends it
            if overdue.job_id is not None:
                witness.name(overdue.job_id)
            faulthandler.dump_traceback_later(self.deadlines.grace, exit=True, file=witness.fd)
        else:
            faulthandler.dump_traceback_later(self.deadlines.grace, exit=True)
        try:
            overdue.on_timeout()
        except BaseException:
            log.exception("timeout bookkeeping failed; the job comes back after retry_after")
        released = self.release_others(overdue.thread)
        if released:
            self.notice(f"released {released} other job(s) in flight; they run again on another worker")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_TIMED_OUT)

    def release_others(self, stuck: int) -> int:
        """Put back every job the other slots hold (fenced), and delete the ones that already finished."""
        released = 0
        for thread, slot in list(self.threads.items()):
            if thread == stuck:
                continue
            slot.delete_finished()
            job = slot.current
            if job is None:
                continue
            try:
                released += bool(job.release(0))
            except DriverError as exc:
                self.notice(f"{exc}; job {job.key} comes back after retry_after")
        return released

    def status(self) -> WorkerStatus:
        """Every slot's job for the heartbeat, oldest first (plain attribute reads, as with one slot)."""
        jobs: list[SlotJob] = []
        for slot in self.slots:
            job, since = slot.current, slot.current_since
            if job is not None and since is not None:
                jobs.append(SlotJob(job.raw, job.queue, since))
        jobs.sort(key=lambda job: job.started_at)
        if self.worker.flags.should_quit or self.stopping.is_set():
            state = "stopping"
        elif jobs:
            state = "working"
        else:
            state = next((slot.held_back for slot in self.slots if slot.held_back), None) or "idle"
        counts = (sum(s.jobs_done for s in self.slots), sum(s.jobs_failed for s in self.slots),
                  sum(s.jobs_released for s in self.slots))
        if not jobs:
            return WorkerStatus(state, None, None, None, *counts, concurrency=len(self.slots))
        first = jobs[0]
        return WorkerStatus(state, first.raw, first.queue, first.started_at, *counts, jobs=tuple(jobs),
                            concurrency=len(self.slots))

    def notice(self, message: str) -> None:
        self.worker.events.dispatch(WorkerNotice(self.worker.driver.connection_name, message))
