"""What users hold: `PendingBatch` (the builder behind `Bus.batch([...])`) and `Batch` (a live batch)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

from qctl.bus.batch_store import BatchRecord
from qctl.bus.callbacks import callback_path
from qctl.jobs.job import CommitChoice
from qctl.payload.signing import SIGNATURE_FIELD

if TYPE_CHECKING:
    from qctl.bus.batching import Batches

CALLBACK_NAMES = ("before", "progress", "then", "catch", "finally")


class BatchName(str):
    """`pending.name` reads as the batch's name and `pending.name("Import CSV")` sets it (Laravel's
    `->name()`), so both the fluent builder and predicates over `.name` work."""

    __slots__ = ("_pending",)
    _pending: PendingBatch

    def __new__(cls, value: str, pending: PendingBatch) -> BatchName:
        made = super().__new__(cls, value)
        made._pending = pending
        return made

    def __call__(self, value: str) -> PendingBatch:
        self._pending._name = str(value)
        return self._pending


class PendingBatch(CommitChoice):
    """`Bus.batch(jobs).then(fn).catch(fn).finally_(fn).name(s).on_queue(q).allow_failures().dispatch()`.

    Items are jobs, queueable functions, or lists of them (a chain run inside the batch).
    Callbacks are module-level functions inside `app`; a lambda is refused when it is given.
    """

    def __init__(self, jobs: Sequence[Any], batches: Callable[[], Batches]) -> None:
        self.jobs: list[Any] = list(jobs)
        self._batches = batches
        self._name = ""
        self.connection: str | None = None
        self.queue: str | None = None
        self.allows_failures = False
        self.callbacks: dict[str, list[Callable[..., Any]]] = {kind: [] for kind in CALLBACK_NAMES}

    @property
    def name(self) -> BatchName:
        return BatchName(self._name, self)

    def _callback(self, kind: str, fn: Callable[..., Any]) -> Self:
        callback_path(fn, f"batch {kind} callback")
        self.callbacks[kind].append(fn)
        return self

    def before(self, fn: Callable[[Batch], Any]) -> Self:
        """Runs once the batch is stored, before its jobs are queued."""
        return self._callback("before", fn)

    def progress(self, fn: Callable[[Batch], Any]) -> Self:
        """Runs after each job of the batch succeeds (and, with allow_failures, after each failure)."""
        return self._callback("progress", fn)

    def then(self, fn: Callable[[Batch], Any]) -> Self:
        """Runs once every job of the batch has succeeded."""
        return self._callback("then", fn)

    def catch(self, fn: Callable[[Batch, BaseException], Any]) -> Self:
        """Runs on the batch's first failure."""
        return self._callback("catch", fn)

    def finally_(self, fn: Callable[[Batch], Any]) -> Self:
        """Runs once every job of the batch has run (succeeded, failed for good, or was skipped)."""
        return self._callback("finally", fn)

    def on_connection(self, connection: str) -> Self:
        self.connection = connection
        return self

    def on_queue(self, queue: str) -> Self:
        self.queue = queue
        return self

    def allow_failures(self, allow: bool = True) -> Self:
        """A failed job no longer cancels the batch."""
        self.allows_failures = allow
        return self

    def add(self, jobs: Sequence[Any]) -> Self:
        self.jobs.extend(jobs)
        return self

    @property
    def options(self) -> dict[str, Any]:
        """What will be stored (callbacks by import path), for inspection and test fakes."""
        return {
            **{kind: [callback_path(fn, kind) for fn in fns] for kind, fns in self.callbacks.items() if fns},
            "allowFailures": self.allows_failures,
            "connection": self.connection,
            "queue": self.queue,
        }

    def dispatch(self) -> Batch:
        """Store the batch, run `before`, queue every job; returns the live Batch."""
        return self._batches().dispatch(self)


class Batch:
    """A batch as the store last saw it; `fresh()` reads it again."""

    def __init__(self, record: BatchRecord, batches: Batches, adder: Any = None) -> None:
        self._record = record
        self._batches = batches
        self._adder = adder

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def total_jobs(self) -> int:
        return self._record.total_jobs

    @property
    def pending_jobs(self) -> int:
        return self._record.pending_jobs

    @property
    def failed_jobs(self) -> int:
        return self._record.failed_jobs

    @property
    def failed_job_ids(self) -> list[str]:
        return list(self._record.failed_job_ids)

    @property
    def options(self) -> dict[str, Any]:
        return {k: v for k, v in self._record.options.items() if k not in (SIGNATURE_FIELD, "chain")}

    @property
    def created_at(self) -> dt.datetime:
        return _when(self._record.created_at) or dt.datetime.fromtimestamp(0, dt.UTC)

    @property
    def cancelled_at(self) -> dt.datetime | None:
        return _when(self._record.cancelled_at)

    @property
    def finished_at(self) -> dt.datetime | None:
        return _when(self._record.finished_at)

    def processed_jobs(self) -> int:
        return self.total_jobs - self.pending_jobs

    def progress(self) -> int:
        """Percent of the jobs processed, 0-100."""
        return round(self.processed_jobs() / self.total_jobs * 100) if self.total_jobs > 0 else 0

    def finished(self) -> bool:
        return self._record.finished_at is not None

    def cancelled(self) -> bool:
        return self._record.cancelled_at is not None

    def has_failures(self) -> bool:
        return self.failed_jobs > 0

    def allows_failures(self) -> bool:
        return bool(self._record.options.get("allowFailures"))

    def cancel(self) -> None:
        self._batches.store.cancel(self.id)
        self._record = self._batches.record(self.id) or self._record

    def add(self, jobs: Sequence[Any]) -> Batch:
        """Queue more jobs in this batch (one bulk push and one counter update); returns it fresh."""
        self._record = self._batches.add(self._record, jobs, self._adder)
        return self

    def fresh(self) -> Batch:
        found = self._batches.record(self.id)
        return Batch(found, self._batches, self._adder) if found is not None else self

    def delete(self) -> None:
        self._batches.store.delete(self.id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, snake_case (what `qctl batches --json` prints)."""
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "name": self.name,
            "total_jobs": self.total_jobs,
            "pending_jobs": self.pending_jobs,
            "processed_jobs": self.processed_jobs(),
            "progress": self.progress(),
            "failed_jobs": self.failed_jobs,
            "failed_job_ids": self.failed_job_ids,
            "options": self.options,
            "created_at": iso(self.created_at),
            "cancelled_at": iso(self.cancelled_at),
            "finished_at": iso(self.finished_at),
        }

    def __repr__(self) -> str:
        return f"<Batch {self.id} {self.name!r} {self.processed_jobs()}/{self.total_jobs} failed={self.failed_jobs}>"


def _when(stamp: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(stamp, dt.UTC) if stamp is not None else None
