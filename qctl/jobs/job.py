"""The Job base class users subclass: declarative options, fluent dispatch, runtime helpers.

A job's public instance attributes are its payload. Fluent dispatch settings and
the worker's context live in `_qctl_*` attributes, which are never serialized.
Dispatching goes through `qctl.runtime` (imported inside the method: the one
allowed upward edge from this layer).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol, Self

from qctl.errors import ManuallyFailedError


class JobContext(Protocol):
    """What a running job may ask of the worker that reserved it."""

    @property
    def job_id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def connection_name(self) -> str: ...
    def attempts(self) -> int: ...
    def release(self, seconds: float) -> None: ...
    def fail(self, exc: BaseException) -> None: ...
    def delete(self) -> None: ...
    def is_released(self) -> bool: ...
    def is_deleted(self) -> bool: ...
    def has_failed(self) -> bool: ...
    @property
    def batch_id(self) -> str | None: ...
    def batch(self) -> Any: ...
    def prepend_to_chain(self, job: Any) -> None: ...
    def append_to_chain(self, job: Any) -> None: ...
    def cache(self, name: str | None = None) -> Any:
        """A cache store (`[cache]`, or a named `[caches.NAME]`): how middleware take locks and count hits."""


Delay = float | int | dt.timedelta | dt.datetime


class CommitChoice:
    """How a dispatch meets an open tracked transaction (`qctl.transactions.track`); None = the connection's
    `after_commit` / `enqueue_in_transaction` options decide."""

    _qctl_after_commit: bool | None = None
    _qctl_in_transaction: bool | None = None

    def after_commit(self) -> Self:
        """Inside a tracked transaction, push only once it commits (dropped if it rolls back)."""
        self._qctl_after_commit = True
        return self

    def before_commit(self) -> Self:
        """Push at once, even inside a tracked transaction on an `after_commit = true` connection."""
        self._qctl_after_commit = False
        self._qctl_in_transaction = False
        return self

    def in_transaction(self) -> Self:
        """Write the job row inside the tracked transaction (same database): it commits or rolls back with it."""
        self._qctl_in_transaction = True
        return self


class Job(CommitChoice):
    """Subclass it, give it `handle()`, and dispatch instances."""

    queue: str | None = None
    connection: str | None = None
    tries: int | None = None
    max_exceptions: int | None = None
    timeout: float | None = None
    fail_on_timeout: bool = False
    backoff: Any = None
    delete_when_missing_models: bool = False

    _qctl_ctx: JobContext | None = None
    _qctl_queue: str | None = None
    _qctl_connection: str | None = None
    _qctl_delay: Delay | None = None

    def handle(self) -> Any:
        raise NotImplementedError(f"{type(self).__qualname__} must define handle()")

    def failed(self, exc: BaseException) -> None:
        """Called on a fresh instance when the job fails for good."""

    def middleware(self) -> list[Any]:
        return []

    def retry_until(self) -> dt.datetime | None:
        return None

    def display_name(self) -> str:
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"

    # --- fluent dispatch -----------------------------------------------------------

    def on_queue(self, queue: str) -> Self:
        self._qctl_queue = queue
        return self

    def on_connection(self, connection: str) -> Self:
        self._qctl_connection = connection
        return self

    def delay(self, delay: Delay | None) -> Self:
        """Seconds, a timedelta or an aware datetime."""
        self._qctl_delay = delay
        return self

    def without_delay(self) -> Self:
        self._qctl_delay = None
        return self

    def dispatch(self) -> str | None:
        """Push the job; returns its id (the payload uuid), or None when it was not pushed."""
        from qctl.runtime import current  # the one upward edge: jobs dispatch themselves

        return current().dispatcher.dispatch(self)

    def dispatch_sync(self) -> None:
        """Run the job now, in this process, through the same path a worker uses."""
        from qctl.runtime import current

        current().dispatcher.dispatch_sync(self)

    # --- inside handle() -----------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        return self._qctl_ctx.job_id if self._qctl_ctx else None

    def attempts(self) -> int:
        return self._qctl_ctx.attempts() if self._qctl_ctx else 1

    def release(self, seconds: float = 0) -> None:
        if self._qctl_ctx:
            self._qctl_ctx.release(seconds)

    def fail(self, exc_or_message: BaseException | str | None = None) -> None:
        if self._qctl_ctx is None:
            return
        if isinstance(exc_or_message, BaseException):
            exc = exc_or_message
        else:
            exc = ManuallyFailedError(exc_or_message or f"{self.display_name()} was marked as failed")
        self._qctl_ctx.fail(exc)

    def delete(self) -> None:
        if self._qctl_ctx:
            self._qctl_ctx.delete()

    @property
    def batch_id(self) -> str | None:
        return self._qctl_ctx.batch_id if self._qctl_ctx else None

    def batch(self) -> Any:
        """The `qctl.Batch` this job runs in (fresh from the batch store), or None."""
        return self._qctl_ctx.batch() if self._qctl_ctx else None

    def prepend_to_chain(self, job: Any) -> None:
        """Run `job` right after this one (it starts a chain when this job is in none)."""
        if self._qctl_ctx:
            self._qctl_ctx.prepend_to_chain(job)

    def append_to_chain(self, job: Any) -> None:
        """Run `job` at the end of this job's chain."""
        if self._qctl_ctx:
            self._qctl_ctx.append_to_chain(job)

    # --- testing a job on its own (implemented in qctl.testing, imported on use) -----

    def with_fake_queue_interactions(self) -> Self:
        """Record release/delete/fail instead of acting on them; then `handle()` and `assert_released()`…"""
        from qctl.testing.interactions import fake_interactions

        fake_interactions(self)
        return self

    def with_fake_batch(self, **batch: Any) -> tuple[Self, Any]:
        """`job, batch = Job().with_fake_batch()`: `self.batch()` is a FakeBatch (`added`, `cancelled()`)."""
        from qctl.testing.interactions import FakeBatch, fake_interactions

        fake = FakeBatch(**batch)
        fake_interactions(self, fake)
        return self, fake

    def _qctl_fake_context(self) -> Any:
        from qctl.testing.interactions import interactions_of

        return interactions_of(self)

    def assert_released(self, delay: float | None = None) -> None:
        self._qctl_fake_context().assert_released(delay)

    def assert_not_released(self) -> None:
        self._qctl_fake_context().assert_not_released()

    def assert_deleted(self) -> None:
        self._qctl_fake_context().assert_deleted()

    def assert_not_deleted(self) -> None:
        self._qctl_fake_context().assert_not_deleted()

    def assert_failed(self) -> None:
        self._qctl_fake_context().assert_failed()

    def assert_not_failed(self) -> None:
        self._qctl_fake_context().assert_not_failed()

    def assert_failed_with(self, exc_type: type[BaseException] | BaseException) -> None:
        self._qctl_fake_context().assert_failed_with(exc_type)

    def assert_has_chain(self, chain: list[Any]) -> None:
        """The jobs handle() prepended/appended to its chain (classes, or instances compared by attributes)."""
        self._qctl_fake_context().assert_has_chain(chain)

    def assert_doesnt_have_chain(self) -> None:
        self._qctl_fake_context().assert_doesnt_have_chain()

    # --- what goes in the payload ---------------------------------------------------

    def payload_attributes(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def option(self, name: str) -> Any:
        """A job option that may be a plain attribute or a method (tries, backoff, timeout…)."""
        value = getattr(self, name, None)
        return value() if callable(value) else value
