"""The attempt rules: when a job has run out of tries, how long to back off, and failing it."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from qctl.clock import Clock
from qctl.errors import PayloadError
from qctl.events import EventBus, JobFailed
from qctl.jobs.resolve import Resolver
from qctl.payload.signing import Signer
from qctl.worker.instantiate import instantiate
from qctl.worker.options import WorkerOptions

if TYPE_CHECKING:
    from qctl.worker.runner import RunningJob

log = logging.getLogger("qctl.worker")

ExceptionCounter = Callable[[str], int]
"""Adds one to a job uuid's exception count (shared by all workers) and returns the new count."""


def too_many_attempts(name: str) -> str:
    return f"{name} has been attempted too many times or run too long. The job may have previously timed out."


def describe_exception(exc: BaseException) -> str:
    """First line `Class: message` (what `qctl failed` shows), then the traceback."""
    head = f"{type(exc).__qualname__}: {exc}".strip()
    if isinstance(exc, PayloadError) or exc.__traceback__ is None:
        return head
    return head + "\n\n" + "".join(traceback.format_exception(exc))


class FailureRules:
    def __init__(self, options: WorkerOptions, clock: Clock, exception_counter: ExceptionCounter | None = None) -> None:
        self.options = options
        self.clock = clock
        self.exception_counter = exception_counter

    def max_tries(self, running: RunningJob) -> int:
        envelope = running.envelope
        if envelope is not None and envelope.max_tries is not None:
            return envelope.max_tries
        return self.options.tries

    def already_exceeded(self, running: RunningJob) -> str | None:
        """Checked before running: a deadline that passed, or more reservations than tries."""
        envelope = running.envelope
        assert envelope is not None
        if envelope.retry_until is not None:
            return too_many_attempts(envelope.display_name) if self.clock.time() > envelope.retry_until else None
        max_tries = self.max_tries(running)
        if max_tries > 0 and running.attempts() > max_tries:
            return too_many_attempts(envelope.display_name)
        return None

    def will_exceed(self, running: RunningJob, exc: BaseException) -> str | None:
        """Checked after an exception: is this the last attempt, or the last allowed exception?"""
        envelope = running.envelope
        if envelope is None:
            return "unreadable payload"
        if envelope.retry_until is not None:
            if self.clock.time() >= envelope.retry_until:
                return too_many_attempts(envelope.display_name)
        else:
            max_tries = self.max_tries(running)
            if max_tries > 0 and running.attempts() >= max_tries:
                return too_many_attempts(envelope.display_name)
        counter = self.exception_counter
        if envelope.max_exceptions and counter is not None and counter(envelope.uuid) >= envelope.max_exceptions:
            return f"{envelope.display_name} has thrown {envelope.max_exceptions} exceptions"
        return None

    def backoff(self, running: RunningJob) -> int:
        job_backoff = running.envelope.backoff_seconds() if running.envelope else None
        return self.options.backoff_for(running.attempts(), job_backoff)

    @staticmethod
    def call_failed_hook(running: RunningJob, exc: BaseException, resolver: Resolver, signer: Signer | None) -> None:
        """`failed(exc)` on a fresh instance; a hook that raises is logged, the failure stays recorded."""
        if running.envelope is None or isinstance(exc, PayloadError):
            return
        try:
            fresh = instantiate(running.envelope, resolver, signer)
            fresh.failed(exc)
        except Exception:
            log.exception("the failed() hook of %s raised", running.display_name)

    @staticmethod
    def announce_failure(events: EventBus, connection_name: str, running: RunningJob, exc: BaseException) -> None:
        events.dispatch(JobFailed(connection_name, running, exc))
