"""What a job middleware is, and how one reaches the worker that runs the job.

A middleware is any object with `handle(job, next)`: it calls `next(job)` to go on (the next
middleware, at the end `job.handle()`), or returns without calling it. A job that neither ran
nor was released or failed by its middleware is deleted (Laravel's rule): it counts as done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from qctl.errors import QctlError

if TYPE_CHECKING:
    from qctl.cache.base import CacheStore
    from qctl.jobs.job import JobContext

Next = Callable[[Any], Any]


@runtime_checkable
class Middleware(Protocol):
    def handle(self, job: Any, next: Next) -> Any: ...


class JobMiddleware:
    """A base to subclass: `handle` runs `before`, the rest of the pipeline, then `after`.

    `before` returning False stops the job there (it is deleted, unless `before` released it).
    """

    def handle(self, job: Any, next: Next) -> Any:
        if self.before(job) is False:
            return None
        result = next(job)
        self.after(job)
        return result

    def before(self, job: Any) -> bool | None:
        return None

    def after(self, job: Any) -> None:
        return None


class MiddlewareError(QctlError):
    """A middleware was set up wrongly (an unknown limiter, a bad option, no handle method)."""


def context_of(job: Any) -> JobContext:
    """The worker context bound to a running job; middleware reach the cache through it."""
    context = getattr(job, "_qctl_ctx", None)
    if context is None:
        raise MiddlewareError(f"{type(job).__qualname__} is not running in a worker: its middleware has no queue to act on")
    return context  # type: ignore[no-any-return]


def cache_of(job: Any, name: str | None = None) -> CacheStore:
    return context_of(job).cache(name)  # type: ignore[no-any-return]


def class_name(job: Any) -> str:
    cls = type(job)
    return f"{cls.__module__}.{cls.__qualname__}"


def seconds(value: float | int, what: str) -> float:
    """A non-negative number of seconds, or a clear error naming the option."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        raise MiddlewareError(f"{what} must be a number of seconds >= 0, not {value!r}")
    return float(value)
