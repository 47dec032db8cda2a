"""Skip and FailOnException: end a job early by a condition, or fail it at once on some exceptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qctl.middleware.base import Next
from qctl.middleware.throttles import exception_test


class Skip:
    """`Skip.when(cond)` / `Skip.unless(cond)`: a skipped job is deleted without running.

    `cond` is a bool, or a function taking the job, evaluated when the job is about to run.
    """

    def __init__(self, condition: bool | Callable[[Any], Any], skip_if: bool = True) -> None:
        self.condition = condition
        self.skip_if = skip_if

    @classmethod
    def when(cls, condition: bool | Callable[[Any], Any]) -> Skip:
        return cls(condition, True)

    @classmethod
    def unless(cls, condition: bool | Callable[[Any], Any]) -> Skip:
        return cls(condition, False)

    def handle(self, job: Any, next: Next) -> Any:
        value = self.condition(job) if callable(self.condition) else self.condition
        if bool(value) is self.skip_if:
            return None
        return next(job)


class FailOnException:
    """`FailOnException([PermissionDenied])`: those exceptions fail the job for good, with no retry.

    Takes exception classes or a function of the exception; other exceptions take the usual road.
    """

    def __init__(self, what: Any) -> None:
        self.matches = exception_test(what, "FailOnException")

    def handle(self, job: Any, next: Next) -> Any:
        try:
            return next(job)
        except Exception as exc:
            if not self.matches(exc):
                raise
            job.fail(exc)
            return None
