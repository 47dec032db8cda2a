"""Module-level entry points: dispatch helpers, the `Queue` and `Bus` facades (and their fakes, for tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from qctl import events
from qctl.jobs.functions import queued
from qctl.jobs.job import Job

if TYPE_CHECKING:
    from qctl.bus.batch import Batch, PendingBatch
    from qctl.bus.chain import PendingChain
    from qctl.testing import BusFake, QueueFake


def dispatch(job: Job | Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    """`dispatch(MyJob(1))`, or `dispatch(queueable_function, *args, **kwargs)`; returns the job id."""
    if isinstance(job, Job):
        if args or kwargs:
            raise TypeError("dispatch(job) takes no extra arguments; pass them to the job's constructor")
        return job.dispatch()
    return queued(job, *args, **kwargs).dispatch()


def dispatch_sync(job: Job | Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    if isinstance(job, Job):
        job.dispatch_sync()
    else:
        queued(job, *args, **kwargs).dispatch_sync()


def _holds(condition: Any) -> bool:
    return bool(condition() if callable(condition) else condition)


def dispatch_if(condition: Any, job: Job | Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    return dispatch(job, *args, **kwargs) if _holds(condition) else None


def dispatch_unless(condition: Any, job: Job | Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    return None if _holds(condition) else dispatch(job, *args, **kwargs)


class Queue:
    """Laravel's Queue facade: register listeners for the worker's job events, push jobs in bulk."""

    @staticmethod
    def fake(jobs: Iterable[Any] | None = None) -> QueueFake:
        """Record pushes instead of storing them (all jobs, or only `jobs`); see qctl.testing."""
        from qctl.testing import fake_queue  # test-only: imported when a test asks for it

        return fake_queue(jobs)

    @staticmethod
    def bulk(jobs: Iterable[Job]) -> list[str]:
        """Dispatch many jobs at once (one round trip per chunk of 500); returns their ids."""
        from qctl.runtime import current

        return current().dispatcher.bulk(jobs)

    @staticmethod
    def before(listener: Callable[[events.JobProcessing], Any]) -> Callable[[events.JobProcessing], Any]:
        return events.listen(events.JobProcessing, listener)

    @staticmethod
    def after(listener: Callable[[events.JobProcessed], Any]) -> Callable[[events.JobProcessed], Any]:
        return events.listen(events.JobProcessed, listener)

    @staticmethod
    def failing(listener: Callable[[events.JobFailed], Any]) -> Callable[[events.JobFailed], Any]:
        return events.listen(events.JobFailed, listener)

    @staticmethod
    def looping(listener: Callable[[events.Looping], Any]) -> Callable[[events.Looping], Any]:
        return events.listen(events.Looping, listener)


class Bus:
    """Laravel's Bus facade: chains, batches, and finding a batch by id."""

    @staticmethod
    def fake(jobs: Iterable[Any] | None = None) -> BusFake:
        """Record dispatches, chains and batches instead of queueing them; see qctl.testing."""
        from qctl.testing import fake_bus  # test-only: imported when a test asks for it

        return fake_bus(jobs)

    @staticmethod
    def chain(jobs: Sequence[Any]) -> PendingChain:
        """`Bus.chain([A(), B(), Bus.batch([...]), C()]).catch(fn).dispatch()` runs them one after another."""
        from qctl.bus.chain import PendingChain
        from qctl.runtime import current

        def app() -> tuple[tuple[str, ...], str]:
            return current().config.app, current().config.source

        return PendingChain(jobs, lambda: current().chains, app)

    @staticmethod
    def batch(jobs: Sequence[Any]) -> PendingBatch:
        """`Bus.batch([A(), B(), [C(), D()]]).then(fn).dispatch()` runs them in parallel, tracked as one batch."""
        from qctl.bus.batch import PendingBatch
        from qctl.runtime import current

        return PendingBatch(jobs, lambda: current().batches)

    @staticmethod
    def find_batch(batch_id: str) -> Batch | None:
        from qctl.runtime import current

        return current().batches.find(batch_id)
