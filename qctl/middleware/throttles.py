"""ThrottlesExceptions: after too many exceptions in a window, hold the job back until it passes.

For a job that calls something flaky (a third-party API): once it has thrown `max_exceptions`
exceptions within the decay window, it is not run again until the window lets one more
through. Each exception is counted on the cache store, atomically across workers, and the
job is released (after `backoff`) instead of failing; `tries` or `retry_until` still bound it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Self

from qctl.cache import keys
from qctl.middleware.base import MiddlewareError, Next, cache_of, class_name, context_of, seconds
from qctl.middleware.rate_limited import RELEASE_MARGIN_SECONDS

log = logging.getLogger("qctl.middleware")

ExceptionTest = Callable[[BaseException], bool]
COUNTED = ":counted"
"""Beside a throttle's hits: set while exceptions are counted, so a success pays no reset when none are."""


def exception_test(what: Any, option: str) -> ExceptionTest:
    """Exception classes (one or a list) or a callable taking the exception."""
    if isinstance(what, type) and issubclass(what, BaseException):
        what = [what]
    if isinstance(what, list | tuple) and all(isinstance(t, type) and issubclass(t, BaseException) for t in what):
        kinds = tuple(what)
        return lambda exc: isinstance(exc, kinds)
    if callable(what):
        return lambda exc: bool(what(exc))
    raise MiddlewareError(f"{option} takes exception classes or a function of the exception, not {what!r}")


class ThrottlesExceptions:
    def __init__(self, max_exceptions: int = 10, decay_minutes: float = 10, *, decay_seconds: float | None = None,
                 cache: str | None = None) -> None:
        if isinstance(max_exceptions, bool) or not isinstance(max_exceptions, int) or max_exceptions < 1:
            raise MiddlewareError(f"ThrottlesExceptions: max_exceptions must be a whole number >= 1, not {max_exceptions!r}")
        decay = seconds(decay_seconds, "ThrottlesExceptions decay_seconds") if decay_seconds is not None \
            else seconds(decay_minutes, "ThrottlesExceptions decay_minutes") * 60
        if decay <= 0:
            raise MiddlewareError("ThrottlesExceptions: the decay must be longer than 0 seconds")
        self.max_exceptions = max_exceptions
        self.decay = decay
        self.cache = cache
        self.backoff_seconds = 0.0
        self.key: str | None = None
        self.per_job = False
        self.throttles: ExceptionTest = lambda exc: True
        self.reports: ExceptionTest | None = None
        self.deletes: ExceptionTest = lambda exc: False
        self.fails: ExceptionTest = lambda exc: False

    def backoff(self, minutes: float) -> Self:
        """Release the job this many minutes after an exception (default 0: at once)."""
        self.backoff_seconds = seconds(minutes, "ThrottlesExceptions.backoff") * 60
        return self

    def by(self, key: Any) -> Self:
        """Share the count with every job throttled by the same key (one flaky service)."""
        self.key = str(key)
        return self

    def by_job(self) -> Self:
        """Count per job (its id) instead of per job class."""
        self.per_job = True
        return self

    def when(self, fn: ExceptionTest) -> Self:
        """Throttle only exceptions `fn(exc)` is true for; others are raised as usual."""
        self.throttles = exception_test(fn, "ThrottlesExceptions.when")
        return self

    def report(self, fn: ExceptionTest | None = None) -> Self:
        """Log the throttled exceptions (those `fn(exc)` is true for) instead of swallowing them quietly."""
        self.reports = (lambda exc: True) if fn is None else exception_test(fn, "ThrottlesExceptions.report")
        return self

    def delete_when(self, what: Any) -> Self:
        self.deletes = exception_test(what, "ThrottlesExceptions.delete_when")
        return self

    def fail_when(self, what: Any) -> Self:
        self.fails = exception_test(what, "ThrottlesExceptions.fail_when")
        return self

    def counter_key(self, job: Any) -> str:
        if self.key is not None:
            return keys.throttle(self.key)
        return keys.throttle(context_of(job).job_id if self.per_job else class_name(job))

    def handle(self, job: Any, next: Next) -> Any:
        store, key = cache_of(job, self.cache), self.counter_key(job)
        until, counted = store.many([key + ":until", key + COUNTED])  # one round trip, whatever follows
        if until is not None:
            job.release(max(0.0, float(until) - time.time()) + RELEASE_MARGIN_SECONDS)
            return None
        try:
            result = next(job)
        except Exception as exc:
            if not self.throttles(exc):
                raise
            if self.reports is not None and self.reports(exc):
                log.error("%s: %s: %s (throttled)", class_name(job), type(exc).__qualname__, exc, exc_info=exc)
            if self.deletes(exc):
                job.delete()
                return None
            if self.fails(exc):
                job.fail(exc)
                return None
            hit = store.hit(key, self.max_exceptions, self.decay)
            store.put(key + COUNTED, "1", ttl=2 * self.decay)  # outlives the hits it flags
            if not hit.allowed or hit.remaining == 0:
                wait = hit.retry_after or self.decay
                store.put(key + ":until", repr(time.time() + wait), ttl=wait)
            job.release(self.backoff_seconds)
            return None
        if counted is not None:  # a success clears the count, when there is one to clear
            store.reset_hits(key)
            store.forget(key + COUNTED)
        return result
