"""The attempt rules: when a job has run out of tries, how long to back off, and failing it.

Two checks, as in Laravel. Before a job runs: has its retry deadline passed, was
it reserved more times than it may be tried, or did its workers die under it
more than `max_stalls` times? After it raised (or timed out): is this the last
allowed attempt or the last allowed exception?
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from qctl.clock import Clock
from qctl.errors import PayloadError
from qctl.events import EventBus, JobFailed
from qctl.jobs.resolve import Resolver
from qctl.payload.envelope import Envelope
from qctl.payload.signing import Signer
from qctl.worker.counters import JobCounters
from qctl.worker.instantiate import instantiate
from qctl.worker.options import WorkerOptions

if TYPE_CHECKING:
    from qctl.worker.runner import RunningJob

log = logging.getLogger("qctl.worker")

DEFAULT_MAX_STALLS = 3


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
    def __init__(
        self,
        options: WorkerOptions,
        clock: Clock,
        counters: JobCounters | None = None,
        max_stalls: int = DEFAULT_MAX_STALLS,
    ) -> None:
        self.options = options
        self.clock = clock
        self.counters = counters
        self.max_stalls = max_stalls

    def max_tries(self, running: RunningJob) -> int:
        """The job's own `tries` beats the worker's `--tries`; 0 means unlimited."""
        envelope = running.envelope
        if envelope is not None and envelope.max_tries is not None:
            return envelope.max_tries
        return self.options.tries

    def reason_to_fail_before_running(self, running: RunningJob) -> str | None:
        """A deadline that passed, more reservations than tries, or too many dead workers."""
        envelope = running.envelope
        assert envelope is not None
        if envelope.retry_until is not None:
            if self.clock.time() > envelope.retry_until:
                return too_many_attempts(envelope.display_name, "its retry_until deadline has passed")
        else:
            max_tries = self.max_tries(running)
            if max_tries > 0 and running.attempts() > max_tries:
                return too_many_attempts(envelope.display_name, f"reserved {running.attempts()} times, tries = {max_tries}")
        if running.reserved.reclaimed:
            return self.reason_if_stalled_too_often(envelope)
        return None

    def reason_if_stalled_too_often(self, envelope: Envelope) -> str | None:
        """Counted on every reclaim; with tries = 0 this is what stops a job that kills its workers."""
        if self.counters is None:
            return None
        stalls = self.counters.add_stall(envelope.uuid)
        if stalls is None or self.max_stalls <= 0 or stalls <= self.max_stalls:
            return None
        return too_many_attempts(
            envelope.display_name, f"its worker stopped while running it {stalls} times, max_stalls = {self.max_stalls}"
        )

    def reason_to_fail_after(self, running: RunningJob, exc: BaseException) -> str | None:
        """After an exception or a timeout: was this the last attempt, or the last allowed exception?"""
        envelope = running.envelope
        if envelope is None:
            return "unreadable payload"
        if envelope.retry_until is not None:
            if self.clock.time() >= envelope.retry_until:
                return too_many_attempts(envelope.display_name, "its retry_until deadline has passed")
        else:
            max_tries = self.max_tries(running)
            if max_tries > 0 and running.attempts() >= max_tries:
                return too_many_attempts(envelope.display_name, f"attempt {running.attempts()} of {max_tries} failed")
        return self.reason_if_too_many_exceptions(envelope)

    def reason_if_too_many_exceptions(self, envelope: Envelope) -> str | None:
        if not envelope.max_exceptions or self.counters is None:
            return None
        thrown = self.counters.add_exception(envelope.uuid)
        if thrown is None or thrown < envelope.max_exceptions:
            return None
        return f"{envelope.display_name} has thrown {thrown} exceptions (max_exceptions = {envelope.max_exceptions})"

    def backoff(self, running: RunningJob) -> int:
        job_backoff = running.envelope.backoff_seconds() if running.envelope else None
        return self.options.backoff_for(running.attempts(), job_backoff)

    def forget_counters(self, running: RunningJob) -> None:
        if self.counters is not None and running.envelope is not None:
            self.counters.forget(running.envelope.uuid)

    @staticmethod
    def call_failed_hook(running: RunningJob, exc: BaseException, resolver: Resolver, signer: Signer | None) -> None:
        """`failed(exc)` on a fresh instance; a hook that raises is logged, the failure stays recorded.

        The instance sees the settled job (job_id, attempts); release/fail/delete are no-ops by then.
        """
        if running.envelope is None or isinstance(exc, PayloadError):
            return
        try:
            fresh = instantiate(running.envelope, resolver, signer)
            fresh._qctl_ctx = running
            fresh.failed(exc)
        except Exception:
            log.exception("the failed() hook of %s raised", running.display_name)

    @staticmethod
    def announce_failure(events: EventBus, connection_name: str, running: RunningJob, exc: BaseException) -> None:
        events.dispatch(JobFailed(connection_name, running, exc))
