"""qctl: background jobs and workers for Python, the way Laravel's queues work for PHP.

The names below are imported on first use, so `qctl --version`, `qctl --help` and a worker's
start-up load only the parts of qctl they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from qctl.__about__ import __version__

if TYPE_CHECKING:
    from qctl import transactions
    from qctl.facades import Bus, Queue, dispatch, dispatch_if, dispatch_sync, dispatch_unless
    from qctl.jobs.contracts import ShouldBeEncrypted, ShouldBeUnique, ShouldBeUniqueUntilProcessing
    from qctl.jobs.functions import QueuedFunction, queueable, queued
    from qctl.jobs.job import Job
    from qctl.middleware.limits import Limit, RateLimiter

_HOMES = {
    "Bus": "qctl.facades", "Queue": "qctl.facades", "dispatch": "qctl.facades", "dispatch_if": "qctl.facades",
    "dispatch_sync": "qctl.facades", "dispatch_unless": "qctl.facades",
    "ShouldBeEncrypted": "qctl.jobs.contracts", "ShouldBeUnique": "qctl.jobs.contracts",
    "ShouldBeUniqueUntilProcessing": "qctl.jobs.contracts",
    "QueuedFunction": "qctl.jobs.functions", "queueable": "qctl.jobs.functions", "queued": "qctl.jobs.functions",
    "Job": "qctl.jobs.job", "Limit": "qctl.middleware.limits", "RateLimiter": "qctl.middleware.limits",
}
"""Where each public name lives."""

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
    "transactions",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use (PEP 562), then keep the name here."""
    if name == "transactions":
        value: object = importlib.import_module("qctl.transactions")
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'qctl' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
