"""Job middleware: objects with `handle(job, next)` wrapped around a job's handle()."""

from qctl.middleware.base import JobMiddleware, Middleware, MiddlewareError
from qctl.middleware.batches import SkipIfBatchCancelled
from qctl.middleware.limits import Limit, RateLimiter
from qctl.middleware.overlapping import WithoutOverlapping
from qctl.middleware.rate_limited import RateLimited
from qctl.middleware.skip import FailOnException, Skip
from qctl.middleware.throttles import ThrottlesExceptions

__all__ = [
    "FailOnException",
    "JobMiddleware",
    "Limit",
    "Middleware",
    "MiddlewareError",
    "RateLimited",
    "RateLimiter",
    "Skip",
    "SkipIfBatchCancelled",
    "ThrottlesExceptions",
    "WithoutOverlapping",
]
