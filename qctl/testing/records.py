"""What a fake saw, and how assertions describe it: class, queue, connection, a short repr of attributes."""

from __future__ import annotations

import copy
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qctl.jobs.functions import QueuedFunction
from qctl.jobs.job import Job

_SHORT = reprlib.Repr()
_SHORT.maxstring = 40
_SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxset = _SHORT.maxtuple = 4
LISTED = 20
"""At most this many records are listed in a failure message."""


@dataclass
class Record:
    """One pushed (or dispatched) job: the instance as dispatched plus where it went."""

    job: Job
    connection: str
    queue: str
    delay: float
    uuid: str
    chained: list[Any] = field(default_factory=list)
    sync: bool = False

    def as_seen(self) -> Job:
        """A shallow copy of the job with `queue`, `connection`, `delay`, `chained` and `job_uuid` set
        to what the dispatch resolved (the caller's instance is left alone)."""
        seen = copy.copy(self.job)
        seen.__dict__.update(queue=self.queue, connection=self.connection, delay=self.delay,
                             chained=list(self.chained), job_uuid=self.uuid)
        return seen

    def describe(self) -> str:
        where = "sync" if self.sync else f"queue {self.queue!r} on {self.connection!r}"
        delay = f", delay {self.delay:g}s" if self.delay else ""
        chain = f", chain [{', '.join(name_of(j) for j in self.chained)}]" if self.chained else ""
        base = self.job.function.__qualname__ if isinstance(self.job, QueuedFunction) else name_of(self.job)
        return f"{base}({attributes(self.job)}) {where}{delay}{chain}"


def name_of(job: Any) -> str:
    if isinstance(job, QueuedFunction):
        return f"{job.function.__qualname__}()"
    if isinstance(job, type):
        return job.__qualname__
    if callable(job) and not isinstance(job, Job):
        return f"{getattr(job, '__qualname__', job)}()"
    return type(job).__qualname__


def attributes(job: Any) -> str:
    if isinstance(job, QueuedFunction):
        args, kwargs = job.arguments
        parts = [_SHORT.repr(a) for a in args] + [f"{k}={_SHORT.repr(v)}" for k, v in kwargs.items()]
        return ", ".join(parts)
    if isinstance(job, Job):
        return ", ".join(f"{k}={_SHORT.repr(v)}" for k, v in job.payload_attributes().items())
    return ""


def listing(records: Sequence[Record], what: str) -> str:
    if not records:
        return f"nothing was {what}"
    lines = [f"  - {r.describe()}" for r in records[:LISTED]]
    if len(records) > LISTED:
        lines.append(f"  … and {len(records) - LISTED} more")
    return f"{what} ({len(records)}):\n" + "\n".join(lines)


def is_function(target: Any) -> bool:
    return callable(target) and not isinstance(target, type)


def matches_target(job: Job, target: Any) -> bool:
    """A class (subclasses count) or a queueable function (its queued calls count)."""
    if isinstance(target, type):
        return isinstance(job, target)
    return isinstance(job, QueuedFunction) and job.function is target


def same_link(link: Any, expected: Any) -> bool:
    """A chain link matches a class (its type), a queueable function, or an instance with equal public attributes."""
    if isinstance(expected, type):
        return type(link) is expected
    if isinstance(expected, QueuedFunction) and isinstance(link, QueuedFunction):
        return link.function is expected.function and link.arguments == expected.arguments
    if isinstance(expected, Job):
        return type(link) is type(expected) and _public(link) == _public(expected)
    if callable(expected):
        return isinstance(link, QueuedFunction) and link.function is expected
    return bool(link == expected)


def same_chain(chain: Sequence[Any], expected: Sequence[Any]) -> bool:
    return len(chain) == len(expected) and all(same_link(a, b) for a, b in zip(chain, expected, strict=True))


def _public(job: Job) -> dict[str, Any]:
    return {k: v for k, v in job.payload_attributes().items() if k not in ("queue", "connection", "delay", "chained", "job_uuid")}


def target_name(target: Any) -> str:
    return name_of(target) if target is not None else "any job"


Predicate = Callable[[Job], Any]


def predicate_and_times(times_or_predicate: int | Predicate | None) -> tuple[int | None, Predicate | None]:
    if times_or_predicate is None:
        return None, None
    if isinstance(times_or_predicate, bool) or not (isinstance(times_or_predicate, int) or callable(times_or_predicate)):
        raise TypeError(f"expected a number of times or a predicate, got {times_or_predicate!r}")
    if isinstance(times_or_predicate, int):
        return times_or_predicate, None
    return None, times_or_predicate
