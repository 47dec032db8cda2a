"""The transport contracts: a Driver moves raw payload strings; a ReservedJob is one it handed out.

Drivers never see job classes. Every mutation of a reserved job is fenced: it
only acts while the caller still holds the reservation, so a worker whose lease
expired can neither delete nor release (and so duplicate) a job another worker
now runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class ReservedJob(Protocol):
    connection_name: str
    queue: str
    raw: bytes
    attempts: int
    """Reservations so far, this one included (1 on the first run)."""
    reclaimed: bool
    """True when this reservation took the job back from a worker whose lease expired."""

    @property
    def key(self) -> str:
        """The driver's own id for the job (row id, entry), for logs and fencing."""

    def delete(self) -> bool:
        """Remove the job; False when the reservation was lost (someone else holds it now)."""

    def release(self, delay: float) -> bool:
        """Put the job back, available after `delay` seconds; False when the reservation was lost."""

    def renew(self) -> bool:
        """Extend the lease (the job is still running); False when the reservation was lost."""


class Driver(Protocol):
    connection_name: str
    default_queue: str
    retry_after: int | None

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        """Store a payload; it becomes available after `delay` seconds."""

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        """Store many (payload, queue, delay) at once, in as few round trips as the store allows."""

    def pop(self, queues: Sequence[str]) -> ReservedJob | None:
        """Reserve the next available job, trying the queues in priority order."""

    def size(self, queue: str) -> int:
        """Jobs of the queue: ready, delayed and reserved."""

    def clear(self, queue: str) -> int:
        """Delete every job of the queue; returns how many."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class PushesWithDelete(Protocol):
    """Optional, of a ReservedJob: a chain's next link is pushed with the delete of the current one."""

    def delete_and_push(self, items: Sequence[tuple[str, str, float]]) -> bool:
        """Remove this job (fenced, exactly as delete()) and push `items` (payload, queue, delay seconds)
        onto the same connection, atomically where the store allows: both or neither.

        Returns False when the reservation was lost: then nothing was pushed. Where the store cannot
        do both at once (Redis Cluster, the job and a target queue in different slots) it pushes
        first, then deletes, and returns the delete's answer: a crash in between can push twice,
        never lose.
        """


@runtime_checkable
class PushesInTransaction(Protocol):
    """Optional, of a Driver on a SQL database: a batch store on the same database adds the jobs and
    counts them in one transaction."""

    engine: Any

    def push_in(self, conn: Any, items: Sequence[tuple[str, str, float]]) -> None:
        """Insert the jobs using the caller's open SQLAlchemy connection/transaction."""


@runtime_checkable
class RenewsMany(Protocol):
    """Optional, of a Driver: a worker with several slots renews every job it holds in one round trip."""

    def renew_many(self, jobs: Sequence[ReservedJob]) -> list[bool]:
        """Extend each held job's reservation, fenced as its renew() is; True where it was still held."""
        ...


class FoldingDriver(Driver, Protocol):
    """Optional: a driver that deletes a finished job in the same round trip that reserves the next one."""

    def pop_after(self, finished: ReservedJob | None, queues: Sequence[str]) -> ReservedJob | None:
        """Delete `finished` (fenced, exactly as its delete() would), then reserve as pop() does.

        The worker calls it only with a job that ran to its end and only right after that job,
        so at every instant a job is either still reserved (and comes back if the worker dies)
        or deleted: at worst run twice, never lost.
        """


class BlockingDriver(Driver, Protocol):
    """A driver that can wait for a job to arrive instead of the worker polling (Redis `block_for`)."""

    def wait_for_job(self, queues: Sequence[str], at_most: float | None = None) -> bool:
        """Block until a job may be available on one of `queues`, or the driver's block time (capped
        at `at_most` seconds: the worker's own checks cannot wait for ever) passes.

        Returns False when this connection does not block (the worker then sleeps --sleep).
        Runs inside the worker's idle section: a quit request may interrupt it with an exception.
        """

    def wait_and_pop(self, queues: Sequence[str], at_most: float | None = None) -> tuple[bool, ReservedJob | None]:
        """Optional: wait as `wait_for_job` does, then reserve as `pop` does, in one round trip.

        Returns (whether it waited, the job reserved on waking or None); (False, None) when this
        connection does not block. Runs inside the worker's idle section, as `wait_for_job` does.
        """


@runtime_checkable
class GuardedJob(Protocol):
    """A reserved job whose deferred delete a store may guard (see `qctl.drivers.redis.AckGuard`)."""

    guard: Any
    held: bool
    """Set when the guard withheld its permit: the job is still reserved, to be settled the long way."""


@dataclass(frozen=True)
class Cleared:
    """What `clear_returning` removed: how many jobs in each state (as `QueueSizes` counts them)."""

    ready: int
    delayed: int
    reserved: int
    unique: list[bytes]
    """The deleted payloads that contain the marker (unique jobs whose locks are to be released)."""

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.reserved


@runtime_checkable
class ClearsReturning(Protocol):
    """A driver that can hand back what `clear` removed (unique jobs' locks are then released)."""

    def clear_returning(self, queue: str, marker: bytes) -> Cleared:
        """Delete every job of `queue` at once; how many per state and the payloads containing `marker`."""


@dataclass(frozen=True)
class QueueSizes:
    """One queue's jobs by state, as `status` and `monitor` show them.

    Ready jobs could be reserved now (a delayed job already due and a reservation whose lease
    lapsed count as ready); delayed ones fall due later; reserved ones are held by a worker.
    """

    queue: str
    ready: int = 0
    delayed: int = 0
    reserved: int = 0
    oldest_wait: float | None = None
    """Seconds the oldest ready job has been waiting; None when none is ready."""

    @property
    def size(self) -> int:
        """Every job of the queue, as `Driver.size` counts them."""
        return self.ready + self.delayed + self.reserved


@runtime_checkable
class InspectsQueues(Protocol):
    """Optional, of a Driver: sizes per state from counts alone (no scan of payloads), creating
    nothing: a queue whose table or keys do not exist reads as empty."""

    def sizes(self, queue: str) -> QueueSizes:
        """The queue's jobs by state and the age of its oldest ready job."""

    def queues_with_jobs(self, limit: int) -> list[str]:
        """Up to `limit` queues holding jobs now, by name; [] where the store cannot tell cheaply."""
