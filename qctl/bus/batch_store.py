"""The batch store contract: one record per batch and one outcome per member job, so counters cannot drift.

Laravel keeps only counters, and a job that records its success and dies before its
queue delete decrements `pending_jobs` twice when it runs again (laravel PR #47196,
the same bug in Sidekiq Pro batches). qctl also keeps each member job's state, keyed
by (batch id, job uuid), and changes a counter only when it changes that state, in
the same transaction (SQL) or script (Redis). Redelivering a job can then never count
it twice, and `pending_jobs` is never negative.

Member states: `pending` (added, not run to an outcome), `ok`, `failed` (failed for
good, its uuid in `failed_job_ids`), `skipped` (a chain link that will not run because
an earlier link of its chain failed). `pending_jobs` = pending + failed members (as
Laravel: a failed job is still pending until it is retried and succeeds), so
`pending_jobs - len(failed_job_ids)` is the number of jobs that have not run yet.

Every outcome that makes a counter cross a line also names the callbacks that became
due, stored on the member that crossed it, in the same step:
- `then`    when `pending_jobs` reaches 0 (every job succeeded);
- `catch`   when `failed_jobs` goes from 0 to 1 (the first failure);
- `finally` when `pending_jobs - len(failed_job_ids)` reaches 0 (every job has run).
That member's worker runs them and marks each done (`callback_done`) before it
acknowledges the job; if it dies first, the job comes back and its redelivery (told
by `record_*` again, now not `fresh`) runs what is still due: never skipped, never
doubled, except that a worker killed inside a callback runs it again.

A kind is due whether or not the batch has callbacks of that kind (the store does not read
the options' callback paths); the caller runs what there is and marks each kind done. A
fresh outcome keeps what the member still owed (a retried failed member that never marked
its `catch` done owes it still). Only a `pending` member changes state (and, for a success,
a `failed` one: a retry); any other outcome changes nothing and is not fresh, so a `skipped`
member stays skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from qctl.errors import ConfigError

if TYPE_CHECKING:
    from qctl.config import StoreConfig

CALLBACK_KINDS = ("then", "catch", "finally")


@dataclass(frozen=True)
class NewBatch:
    id: str
    name: str
    options: dict[str, Any]
    """JSON-ready: callback paths, allowFailures, queue, connection, a chain to continue."""

    @property
    def allows_failures(self) -> bool:
        return bool(self.options.get("allowFailures"))


@dataclass(frozen=True)
class BatchRecord:
    id: str
    name: str
    total_jobs: int
    pending_jobs: int
    failed_jobs: int
    failed_job_ids: tuple[str, ...]
    options: dict[str, Any]
    created_at: int
    """Unix seconds, as Laravel stores them; so are cancelled_at and finished_at."""
    cancelled_at: int | None = None
    finished_at: int | None = None


@dataclass(frozen=True)
class Recorded:
    """What recording one member's outcome did."""

    known: bool
    """The batch exists and the job is one of its members; False: nothing was changed."""
    fresh: bool = False
    """This call changed the member's state and the counters; False when it was recorded before."""
    pending_jobs: int = 0
    failed_jobs: int = 0
    due: tuple[str, ...] = field(default_factory=tuple)
    """Callbacks this member must still run (a subset of CALLBACK_KINDS, in that order)."""


PushIn = Callable[[Any, list[str]], None]
"""Called inside a database store's add transaction with its SQLAlchemy connection and the
uuids that were new, to push those jobs in the same transaction (queue on the same database)."""


class BatchStore(Protocol):
    def create(self, batch: NewBatch) -> bool:
        """Store a batch with no jobs yet (created_at = now); False when one with this id exists already."""

    def find(self, batch_id: str) -> BatchRecord | None: ...

    def recent(self, limit: int | None = None, unfinished: bool = False) -> list[BatchRecord]:
        """Newest first; `unfinished` keeps those with no finished_at."""

    def add_jobs(
        self, batch_id: str, job_uuids: Sequence[str], *, fresh_batch: bool = False, push_in: PushIn | None = None
    ) -> list[str]:
        """Register the uuids that are not members yet (state pending); total_jobs and pending_jobs grow by
        that many and finished_at is cleared. Returns the new ones, in order. `fresh_batch` says none can be
        members yet (skip the lookup). `push_in` only where `can_push_with` said so. Unknown batch: QctlError."""

    def record_success(self, batch_id: str, job_uuid: str) -> Recorded: ...

    def record_failure(self, batch_id: str, job_uuid: str, skipped: Sequence[str] = ()) -> Recorded:
        """The job failed for good; `skipped` are later links of its chain (still pending ones become skipped).
        The first failure of a batch without allowFailures cancels it (cancelled_at = finished_at = now)."""

    def callback_done(self, batch_id: str, job_uuid: str, kind: str) -> None:
        """The member ran its due callback `kind`; it is no longer due."""

    def cancel(self, batch_id: str) -> None:
        """cancelled_at (and finished_at, if unset) = now; nothing when already cancelled."""

    def mark_finished(self, batch_id: str) -> None:
        """finished_at = now (a batch of zero jobs finishes as it is dispatched)."""

    def delete(self, batch_id: str) -> bool: ...

    def prune_finished(self, before: int) -> int:
        """Delete batches finished before `before` (unix seconds), members included; how many."""

    def prune_unfinished(self, before: int) -> int:
        """Delete batches never finished and created before `before`."""

    def prune_cancelled(self, before: int) -> int:
        """Delete cancelled batches created before `before`."""

    def ack_guard(self, reserved: Any, batch_id: str, job_uuid: str) -> Any:
        """A guard (`qctl.drivers.redis.AckGuard`) that records this member's success in the same round
        trip as its job's deferred delete, granting the delete only when it recorded it (a success that
        makes no callback due); None when the store cannot (another server, a cluster, SQL)."""

    def can_push_with(self, driver: Any) -> bool:
        """Whether jobs for `driver` can be pushed inside this store's add transaction (same database)."""

    def close(self) -> None: ...


def connect(config: StoreConfig) -> BatchStore:
    """The `[batching]` store: `database` (the table and its `<table>_jobs`) or `redis` (the table as key namespace)."""
    if config.driver == "redis":
        from qctl.bus.batch_redis import RedisBatchStore

        return RedisBatchStore(config.url, config.table, where=config.url_key)
    if config.driver == "database":
        from qctl.bus.batch_database import DatabaseBatchStore

        return DatabaseBatchStore(config.url, config.table)
    if config.driver == "memory":
        from qctl.bus.batch_memory import MemoryBatchStore

        return MemoryBatchStore()
    raise ConfigError(f"batching.driver: unknown driver {config.driver!r}; expected database, redis or memory")
