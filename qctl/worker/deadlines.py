"""Timeouts for a worker with several slots, where SIGALRM cannot say which thread ran over.

Each slot registers its job's deadline here for as long as the job runs. The worker's main
thread (`next_overdue`) waits for the earliest one; a job still registered past its deadline
cannot be stopped (a Python thread cannot be interrupted), so the worker takes it over: it
records that job's timeout, releases every other job in flight and exits 1, as a single-slot
worker does (see `qctl.worker.pool`). A slot whose job was taken over never settles it: it
stops at the end of its guard.

The hard layer is the same faulthandler watchdog as a single-slot worker's, armed for the
earliest deadline in flight plus `grace` (re-armed at most every REARM_SLACK), so a process
stuck in C code holding the GIL is still ended, and its witness file names that job.
"""

from __future__ import annotations

import faulthandler
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from qctl.worker.timeout import GRACE_SECONDS, HARD_DEADLINE, REARM_SLACK

LINGER_MARGIN = 1.0
"""With no job in flight, a lingering watchdog is disarmed once it is this close to firing."""


@dataclass(slots=True)
class InFlight:
    """One slot's running job under a deadline."""

    thread: int
    due: float
    on_timeout: Callable[[], None]
    job_id: str | None
    taken: bool = False
    """The worker took it over at its deadline: the slot must not settle it."""


class SlotDeadlines:
    def __init__(self, grace: float = GRACE_SECONDS) -> None:
        self.grace = grace
        self.changed = threading.Condition()
        """Wakes the main thread: a deadline came in or moved, or a slot ended (`notify`)."""
        self.flying: dict[int, InFlight] = {}
        self.wake_at = 0.0
        """When the main thread's wait ends by itself: a deadline due later needs no wake-up."""
        self.watchdog_until: float | None = None
        self.doomed = threading.Event()
        """Never set: a slot whose job was taken over waits on it until the process exits."""

    def guard(self, seconds: float | None, on_timeout: Callable[[], None], job_id: str | None = None) -> SlotDeadline | NoSlotDeadline:
        """What the runner runs a job in on a slot thread (the slot's TimeoutGuard)."""
        if not seconds or seconds <= 0:
            return NO_SLOT_DEADLINE
        return SlotDeadline(self, seconds, on_timeout, job_id)

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def next_overdue(self, at_most: float) -> InFlight | None:
        """Wait up to `at_most` seconds (less when a deadline falls due sooner); the first job past
        its deadline, marked taken, or None."""
        with self.changed:
            overdue = self._overdue()
            if overdue is None:
                earliest = min((job.due for job in self.flying.values() if not job.taken), default=None)
                wait = at_most if earliest is None else min(at_most, max(0.0, earliest - time.monotonic()))
                wait = self._idle_watchdog(wait)
                self.wake_at = time.monotonic() + wait
                self.changed.wait(wait)
                self.wake_at = 0.0
                self._idle_watchdog(0.0)
                overdue = self._overdue()
            if overdue is not None:
                overdue.taken = True
            return overdue

    def _idle_watchdog(self, wait: float) -> float:
        """(Lock held.) No job in flight: disarm a lingering watchdog that is within LINGER_MARGIN of
        firing; else wait no longer than until it is."""
        until = self.watchdog_until
        if self.flying or until is None:
            return wait
        left = until - time.monotonic() - LINGER_MARGIN
        if left > 0:
            return min(wait, left)
        faulthandler.cancel_dump_traceback_later()
        self.watchdog_until = None
        return wait

    def _overdue(self) -> InFlight | None:
        now = time.monotonic()
        late = [job for job in self.flying.values() if not job.taken and job.due <= now]
        return min(late, key=lambda job: job.due) if late else None

    def cover(self) -> None:
        """(Lock held.) Keep the watchdog at the earliest deadline in flight plus grace. With none in
        flight it lingers (arming it starts a thread: once per job would cost a fast queue dear) and
        the main thread disarms it before it could fire (`_idle_watchdog`)."""
        if not self.flying:
            return
        first = min(self.flying.values(), key=lambda job: job.due)
        witness = HARD_DEADLINE.witness
        if witness is not None and first.job_id is not None:
            witness.name(first.job_id)
        target = first.due + self.grace
        until = self.watchdog_until
        if until is not None and target <= until <= target + REARM_SLACK:
            return
        left = max(0.001, target + REARM_SLACK - time.monotonic())
        if witness is not None:
            faulthandler.dump_traceback_later(left, exit=True, file=witness.fd)
        else:
            faulthandler.dump_traceback_later(left, exit=True)
        self.watchdog_until = target + REARM_SLACK

    def close(self) -> None:
        with self.changed:
            self.flying.clear()
            if self.watchdog_until is not None:
                faulthandler.cancel_dump_traceback_later()
                self.watchdog_until = None


class SlotDeadline:
    __slots__ = ("deadlines", "seconds", "on_timeout", "job_id")

    def __init__(self, deadlines: SlotDeadlines, seconds: float, on_timeout: Callable[[], None], job_id: str | None) -> None:
        self.deadlines, self.seconds, self.on_timeout, self.job_id = deadlines, seconds, on_timeout, job_id

    def __enter__(self) -> None:
        deadlines = self.deadlines
        thread = threading.get_ident()
        due = time.monotonic() + self.seconds
        with deadlines.changed:
            deadlines.flying[thread] = InFlight(thread, due, self.on_timeout, self.job_id)
            deadlines.cover()
            if due < deadlines.wake_at:  # sooner than the main thread looks again: wake it
                deadlines.changed.notify_all()

    def __exit__(self, *exc: object) -> None:
        deadlines = self.deadlines
        with deadlines.changed:
            job = deadlines.flying.pop(threading.get_ident(), None)
            taken = job is not None and job.taken
            if not taken:
                deadlines.cover()
        if taken:  # the worker recorded this job's timeout and is exiting: settle nothing more
            deadlines.doomed.wait()

    def extend(self, seconds: float) -> None:
        """Move this job's deadline `seconds` later (an async job: its own cancel must come first)."""
        deadlines = self.deadlines
        with deadlines.changed:
            job = deadlines.flying.get(threading.get_ident())
            if job is not None and not job.taken:
                job.due += seconds
                deadlines.cover()  # later, never sooner: the main thread need not wake


class NoSlotDeadline:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


NO_SLOT_DEADLINE = NoSlotDeadline()
