"""qctl: background jobs and workers for Python, the way Laravel's queues work for PHP."""

from qctl.__about__ import __version__
from qctl.facades import Bus, Queue, dispatch, dispatch_if, dispatch_sync, dispatch_unless
from qctl.jobs.contracts import ShouldBeEncrypted, ShouldBeUnique, ShouldBeUniqueUntilProcessing
from qctl.jobs.functions import QueuedFunction, queueable, queued
from qctl.jobs.job import Job
from qctl.middleware.limits import Limit, RateLimiter

__all__ = [
    "Bus",
    "Job",
    "Limit",
    "Queue",
    "QueuedFunction",
    "RateLimiter",
    "ShouldBeEncrypted",
    "ShouldBeUnique",
    "ShouldBeUniqueUntilProcessing",
    "__version__",
    "dispatch",
    "dispatch_if",
    "dispatch_sync",
    "dispatch_unless",
    "queueable",
    "queued",
]
