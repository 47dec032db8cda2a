"""The moment a job settles: one no-op base class for every after-duty, and a list that calls them.

The runner calls these hooks and nothing else when a job starts, succeeds, is
released or fails for good; chains, batches (and later unique locks and metrics)
each live in their own module and only override what they need. Order matters
and is the runner's promise:

- `before_handle` runs after the job was decoded, before its middleware and `handle()`;
- `before_handler` runs inside the middleware, just before `handle()`, when they let it through;
- `after_success` runs when `handle()` returned without the job failing or releasing
  itself (a job that called `delete()` counts as a success), **before** the job is
  removed from its queue: a worker killed in between runs the job again (at least
  once), it never loses what the hook was about to do;
- `after_release` runs once the job is back on its queue;
- `after_discard` runs once a job whose models are gone was deleted without running
  (`delete_when_missing_models`);
- `after_failure` runs once the failure is recorded in the failed store and **before**
  the job leaves its queue, so bookkeeping a crash interrupts is done again on the
  next delivery; the job's own `failed()` and the `JobFailed` event come after.

A hook that cannot reach its store raises `StoreUnavailableError`; the runner then
puts the job back for a later try instead of settling it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qctl.bus.dispatcher import Prepared
    from qctl.jobs.job import Job
    from qctl.payload.envelope import Envelope


class SettlingJob(Protocol):
    """What a hook may read of the reserved job (the worker's RunningJob)."""

    envelope: Envelope | None
    exception: BaseException | None
    chain_prepended: list[Any]
    """Jobs `prepend_to_chain()` was called with during handle(), in call order."""
    chain_appended: list[Any]
    reserved: Any
    """The driver's reserved job (a store may guard its deferred delete: see settle_before_ack)."""
    settle_before_ack: Callable[[], None] | None
    """Success bookkeeping left to ride with the job's removal; the runner or worker runs it first
    whenever the removal cannot carry it."""

    @property
    def job_id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def connection_name(self) -> str: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def display_name(self) -> str: ...
    def attempts(self) -> int: ...
    def push_with_ack(self, ready: Prepared) -> None:
        """Push `ready` (same connection as this job) together with this job's removal."""


class BatchAccess(Protocol):
    """How a running job reaches its live batch (`self.batch()`)."""

    def batch_for(self, running: SettlingJob) -> Any: ...


class JobHooks:
    """Every hook a no-op: a duty overrides the moments it acts at."""

    def before_handle(self, running: SettlingJob, job: Job) -> None:
        """The job is about to run (its middleware, then `handle()`)."""

    def before_handler(self, running: SettlingJob, job: Job) -> None:
        """The middleware let the job through: `handle()` is called next."""

    def after_success(self, running: SettlingJob, job: Job) -> None:
        """`handle()` returned; the job is still on its queue."""

    def after_release(self, running: SettlingJob) -> None:
        """The job was put back on its queue for a later attempt."""

    def after_failure(self, running: SettlingJob, exc: BaseException) -> None:
        """The failure is recorded; the job is still on its queue."""

    def after_discard(self, running: SettlingJob) -> None:
        """The job was deleted without running (`delete_when_missing_models`: a model it holds is gone)."""


class CompositeHooks(JobHooks):
    """Calls each registered hook in order; empty, every moment costs one truth test."""

    def __init__(self, hooks: Iterable[JobHooks] = ()) -> None:
        self.hooks: list[JobHooks] = list(hooks)

    def add(self, hook: JobHooks) -> None:
        self.hooks.append(hook)

    def of_type(self, kind: type[Any]) -> Any:
        """The registered hook of that type, or None (tests, and hooks that cooperate)."""
        return next((hook for hook in self.hooks if isinstance(hook, kind)), None)

    def before_handle(self, running: SettlingJob, job: Job) -> None:
        for hook in self.hooks:
            hook.before_handle(running, job)

    def before_handler(self, running: SettlingJob, job: Job) -> None:
        for hook in self.hooks:
            hook.before_handler(running, job)

    def after_success(self, running: SettlingJob, job: Job) -> None:
        for hook in self.hooks:
            hook.after_success(running, job)

    def after_release(self, running: SettlingJob) -> None:
        for hook in self.hooks:
            hook.after_release(running)

    def after_failure(self, running: SettlingJob, exc: BaseException) -> None:
        for hook in self.hooks:
            hook.after_failure(running, exc)

    def after_discard(self, running: SettlingJob) -> None:
        for hook in self.hooks:
            hook.after_discard(running)
