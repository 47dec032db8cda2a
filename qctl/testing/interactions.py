"""Testing a job on its own: a fake job context records release/delete/fail, a fake batch records add/cancel.

`job.with_fake_queue_interactions()` and `job.with_fake_batch()` (thin methods on `qctl.Job`)
land here; the job's `handle()` then runs as it would inside a worker, with nothing stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qctl.jobs.job import Job
from qctl.payload.envelope import new_uuid
from qctl.testing.records import name_of, same_chain, target_name


class FakeBatch:
    """Stands in for `qctl.bus.batch.Batch`: the same readings, and `added` holds what `add()` received."""

    def __init__(self, batch_id: str | None = None, name: str = "", *, total_jobs: int = 0,
                 options: dict[str, Any] | None = None) -> None:
        self.id = batch_id or new_uuid()
        self.name = name
        self.total_jobs = total_jobs
        self.pending_jobs = total_jobs
        self.failed_jobs = 0
        self.failed_job_ids: list[str] = []
        self.options = dict(options or {})
        self.created_at = dt.datetime.now(dt.UTC)
        self.cancelled_at: dt.datetime | None = None
        self.finished_at: dt.datetime | None = None
        self.added: list[Any] = []

    def add(self, jobs: Sequence[Any]) -> FakeBatch:
        self.added.extend(jobs)
        self.total_jobs += len(jobs)
        self.pending_jobs += len(jobs)
        return self

    def cancel(self) -> None:
        if self.cancelled_at is None:
            self.cancelled_at = dt.datetime.now(dt.UTC)
            self.finished_at = self.finished_at or self.cancelled_at

    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def finished(self) -> bool:
        return self.finished_at is not None

    def processed_jobs(self) -> int:
        return self.total_jobs - self.pending_jobs

    def progress(self) -> int:
        return round(self.processed_jobs() / self.total_jobs * 100) if self.total_jobs > 0 else 0

    def has_failures(self) -> bool:
        return self.failed_jobs > 0

    def allows_failures(self) -> bool:
        return bool(self.options.get("allowFailures"))

    def fresh(self) -> FakeBatch:
        return self

    def delete(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<FakeBatch {self.id} {self.name!r} added={len(self.added)} cancelled={self.cancelled()}>"


@dataclass
class FakeJobContext:
    """What a worker gives a running job, with every interaction recorded instead of carried out."""

    job: Job
    fake_batch: FakeBatch | None = None
    job_id: str = field(default_factory=new_uuid)
    queue: str = "default"
    connection_name: str = "fake"
    attempt: int = 1
    released: list[float] = field(default_factory=list)
    deleted: bool = False
    failed_with: BaseException | None = None
    prepended: list[Any] = field(default_factory=list)
    appended: list[Any] = field(default_factory=list)

    def attempts(self) -> int:
        return self.attempt

    def release(self, seconds: float) -> None:
        self.released.append(float(seconds))

    def fail(self, exc: BaseException) -> None:
        self.failed_with = exc

    def delete(self) -> None:
        self.deleted = True

    def is_released(self) -> bool:
        return bool(self.released)

    def is_deleted(self) -> bool:
        return self.deleted

    def has_failed(self) -> bool:
        return self.failed_with is not None

    @property
    def batch_id(self) -> str | None:
        return self.fake_batch.id if self.fake_batch else None

    def batch(self) -> Any:
        return self.fake_batch

    def prepend_to_chain(self, job: Any) -> None:
        self.prepended.append(job)

    def append_to_chain(self, job: Any) -> None:
        self.appended.append(job)

    def cache(self, name: str | None = None) -> Any:
        from qctl.runtime import current

        return current().cache_store(name)

    # --- assertions ----------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        raise AssertionError(f"{name_of(self.job)}: {message} ({self.summary()})")

    def summary(self) -> str:
        seen = []
        if self.released:
            seen.append("released " + ", ".join(f"{s:g}s" for s in self.released))
        if self.deleted:
            seen.append("deleted")
        if self.failed_with is not None:
            seen.append(f"failed with {type(self.failed_with).__name__}: {self.failed_with}")
        return "it was " + "; ".join(seen) if seen else "it was neither released, deleted nor failed"

    def assert_released(self, delay: float | None = None) -> None:
        if not self.released:
            self._fail("expected the job to be released, but it was not")
        if delay is not None and float(delay) not in self.released:
            self._fail(f"expected the job to be released with a delay of {delay:g}s")

    def assert_not_released(self) -> None:
        if self.released:
            self._fail("expected the job not to be released")

    def assert_deleted(self) -> None:
        if not self.deleted:
            self._fail("expected the job to be deleted, but it was not")

    def assert_not_deleted(self) -> None:
        if self.deleted:
            self._fail("expected the job not to be deleted")

    def assert_failed(self) -> None:
        if self.failed_with is None:
            self._fail("expected the job to be marked as failed, but it was not")

    def assert_not_failed(self) -> None:
        if self.failed_with is not None:
            self._fail("expected the job not to be marked as failed")

    def chain(self) -> list[Any]:
        """What would run after this job: prepended jobs (the last prepended first), then appended ones."""
        return list(reversed(self.prepended)) + self.appended

    def assert_has_chain(self, chain: Sequence[Any]) -> None:
        if not same_chain(self.chain(), chain):
            wanted = ", ".join(target_name(j) for j in chain)
            got = ", ".join(name_of(j) for j in self.chain()) or "nothing"
            self._fail(f"expected the chain [{wanted}] after the job, but it chained [{got}]")

    def assert_doesnt_have_chain(self) -> None:
        if self.chain():
            self._fail("expected the job to chain nothing, but it chained ["
                       + ", ".join(name_of(j) for j in self.chain()) + "]")

    def assert_failed_with(self, exc_type: type[BaseException] | BaseException) -> None:
        self.assert_failed()
        wanted = exc_type if isinstance(exc_type, type) else type(exc_type)
        if not isinstance(self.failed_with, wanted):
            self._fail(f"expected the job to fail with {wanted.__name__}")
        if isinstance(exc_type, BaseException) and str(exc_type) != str(self.failed_with):
            self._fail(f"expected the job to fail with {type(exc_type).__name__}: {exc_type}")


def fake_interactions(job: Job, batch: FakeBatch | None = None) -> FakeJobContext:
    """Give `job` a recording context (keeping an existing fake batch); returns it."""
    current = job._qctl_ctx
    if isinstance(current, FakeJobContext):
        if batch is not None:
            current.fake_batch = batch
        return current
    context = FakeJobContext(job, batch)
    job._qctl_ctx = context
    return context


def interactions_of(job: Job) -> FakeJobContext:
    context = job._qctl_ctx
    if not isinstance(context, FakeJobContext):
        raise AssertionError(f"{name_of(job)}: call with_fake_queue_interactions() (or with_fake_batch()) "
                             "before handle() to assert on its queue interactions")
    return context
