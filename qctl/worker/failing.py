"""The attempt rules: when a job has run out of tries, and how long to back off.

Two checks, as in Laravel. Before a job runs: has its retry deadline passed, has
it used up its tries, or did its workers die under it more than `max_stalls` times?
After it raised (or timed out): was this the last allowed try or the last allowed
exception? A stall (a worker killed while running the job: kill -9, OOM, a lost host)
does not use up a try — `attempts()` still counts reservations, but tries are
reservations minus stalls — so a deploy that kills workers fails no job; `max_stalls`
bounds a job that keeps killing its workers.

The checks are pure: they read the counts they are given. Counting is a separate,
explicitly named step (`count_stall`, `count_exception`) the runner takes once per
reservation or exception, so asking "would this fail?" never counts twice.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from qctl.clock import Clock
from qctl.errors import PayloadError
from qctl.payload.envelope import Envelope
from qctl.worker.counters import JobCounters
from qctl.worker.options import WorkerOptions

if TYPE_CHECKING:
    from qctl.worker.runner import RunningJob

DEFAULT_MAX_STALLS = 3
SYNC_REASON = "sync jobs are not retried"


def too_many_attempts(name: str, detail: str) -> str:
    """The reason a job that ran out of attempts fails with (Laravel's wording, plus why)."""
    return f"{name} has been attempted too many times or run too long ({detail})"


def describe_exception(exc: BaseException) -> str:
    """First line `Class: message` (what `qctl failed` shows), then the traceback."""
    head = f"{type(exc).__qualname__}: {exc}".strip()
    if isinstance(exc, PayloadError) or exc.__traceback__ is None:
        return head
    return head + "\n\n" + "".join(traceback.format_exception(exc))


class FailureRules:
    """`fail_at_once` is the sync path's policy: the first exception fails the job."""

    def __init__(
        self,
        options: WorkerOptions,
        clock: Clock,
        counters: JobCounters | None = None,
        max_stalls: int = DEFAULT_MAX_STALLS,
        fail_at_once: bool = False,
    ) -> None:
        self.options = options
        self.clock = clock
        self.counters = counters
        self.max_stalls = max_stalls
        self.fail_at_once = fail_at_once

    # --- counting (writes to the shared cache) ----------------------------------------

    def count_stall(self, running: RunningJob) -> int | None:
        """One more worker died holding this job (counted on every reclaim); the new total. A reclaim
        after the hard timeout ended the worker (noted from its witness) is a timed-out attempt
        instead: `running.hard_timed_out` is set and no stall is counted."""
        if self.counters is None or running.envelope is None or not running.reserved.reclaimed:
            return None
        if self.counters.took_hard_timeout(running.envelope.uuid):
            running.hard_timed_out = True
            return None
        return self.counters.add_stall(running.envelope.uuid)

    def reason_to_fail_after_hard_timeout(self, running: RunningJob, timeout: float) -> str | None:
        """The attempt the hard timeout ended counted as a try: was it the last (or fail_on_timeout)?"""
        envelope = running.envelope
        assert envelope is not None
        why = f"{envelope.display_name} has timed out after {timeout:g}s (stopped by its hard timeout: stuck in C code)"
        if envelope.fail_on_timeout:
            return why
        if envelope.retry_until is not None:
            return why if self.clock.time() >= envelope.retry_until else None
        max_tries = self.max_tries(running)
        ended = running.attempts() - 1  # the reservation the timeout ended, counted as a try
        if max_tries > 0 and ended - self.stalls_so_far(running) >= max_tries:
            return why
        return None

    def count_exception(self, running: RunningJob) -> int | None:
        """One more exception for a job with `max_exceptions`; the new total."""
        envelope = running.envelope
        if self.counters is None or envelope is None or not envelope.max_exceptions:
            return None
        return self.counters.add_exception(envelope.uuid)

    def forget_counts(self, running: RunningJob) -> None:
        if self.counters is not None and running.envelope is not None:
            self.counters.forget(running.envelope.uuid)

    # --- the checks (pure) ------------------------------------------------------------

    def max_tries(self, running: RunningJob) -> int:
        """The job's own `tries` beats the worker's `--tries`; 0 means unlimited."""
        envelope = running.envelope
        if envelope is not None and envelope.max_tries is not None:
            return envelope.max_tries
        return self.options.tries

    def reason_to_fail_before_running(self, running: RunningJob, stalls: int | None = None) -> str | None:
        """A deadline that passed, more reservations than tries, or too many dead workers."""
        envelope = running.envelope
        assert envelope is not None
        if envelope.retry_until is not None:
            if self.clock.time() > envelope.retry_until:
                return too_many_attempts(envelope.display_name, "its retry_until deadline has passed")
        else:
            max_tries = self.max_tries(running)
            if max_tries > 0 and running.attempts() > max_tries:
                stalled = stalls if stalls is not None else self.stalls_so_far(running)
                if running.attempts() - stalled > max_tries:  # a stall does not use up a try
                    return too_many_attempts(envelope.display_name, self.tries_used(running, stalled, max_tries))
        return self.reason_if_stalled_too_often(envelope, stalls)

    def stalls_so_far(self, running: RunningJob) -> int:
        """Read only when the reservations alone would fail the job (the counter is a cache round trip)."""
        if self.counters is None or running.envelope is None:
            return 0
        return self.counters.stalls(running.envelope.uuid)

    @staticmethod
    def tries_used(running: RunningJob, stalled: int, max_tries: int) -> str:
        used = running.attempts() - stalled
        detail = f"reserved {running.attempts()} times"
        if stalled:
            detail += f", {stalled} of them ended by a worker that stopped (not counted as tries)"
        return f"{detail}, {used} tries used, tries = {max_tries}"

    def reason_if_stalled_too_often(self, envelope: Envelope, stalls: int | None) -> str | None:
        """With tries = 0 this is what stops a job that kills its workers."""
        if stalls is None or self.max_stalls <= 0 or stalls <= self.max_stalls:
            return None
        return too_many_attempts(
            envelope.display_name, f"its worker stopped while running it {stalls} times, max_stalls = {self.max_stalls}"
        )

    def reason_to_fail_after(self, running: RunningJob, exc: BaseException, exceptions: int | None = None) -> str | None:
        """After an exception or a timeout: was this the last attempt, or the last allowed exception?"""
        if self.fail_at_once:
            return SYNC_REASON
        envelope = running.envelope
        if envelope is None:
            return "unreadable payload"
        if envelope.retry_until is not None:
            if self.clock.time() >= envelope.retry_until:
                return too_many_attempts(envelope.display_name, "its retry_until deadline has passed")
        else:
            max_tries = self.max_tries(running)
            if max_tries > 0 and running.attempts() >= max_tries:
                used = running.attempts() - self.stalls_so_far(running)  # a stall does not use up a try
                if used >= max_tries:
                    return too_many_attempts(envelope.display_name, f"attempt {used} of {max_tries} failed")
        return self.reason_if_too_many_exceptions(envelope, exceptions)

    @staticmethod
    def reason_if_too_many_exceptions(envelope: Envelope, thrown: int | None) -> str | None:
        if not envelope.max_exceptions or thrown is None or thrown < envelope.max_exceptions:
            return None
        return f"{envelope.display_name} has thrown {thrown} exceptions (max_exceptions = {envelope.max_exceptions})"

    def backoff(self, running: RunningJob) -> int:
        job_backoff = running.envelope.backoff_seconds() if running.envelope else None
        return self.options.backoff_for(running.attempts(), job_backoff)
