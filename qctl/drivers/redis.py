"""The Redis driver: Laravel's key shapes, atomic Lua scripts, fenced and lease-renewed reservations.

Keys of queue `q` (under the connection's prefix): `queues:q` (ready list of payloads),
`queues:q:delayed` and `queues:q:reserved` (sorted sets of `<token>:<payload>` by due time
and lease expiry), `queues:q:notify` (wake-up tokens for blocked workers) and
`queues:q:attempts` (reservations per payload sha1). Scripts move payload bytes unchanged,
so garbage reaches the worker byte-exact and goes to the failed store. Each reservation
carries a random token; delete, release and renew only act while that token still holds
the job, so a worker whose lease expired cannot touch the job another worker now runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from qctl.config import DEFAULT_REDIS_URL, ConnectionConfig
from qctl.drivers.base import Cleared, QueueSizes, ReservedJob
from qctl.drivers.redis_bulk import bulk_calls, bulk_chunks, bulk_commands, by_queue
from qctl.drivers.redis_client import Call, RedisClient
from qctl.drivers.redis_keys import QueueKeys, group_by_slot, new_token, queue_keys, slot_of
from qctl.drivers.scripts import Script, script
from qctl.errors import DriverError

MIN_BLOCK_SECONDS = 0.01  # Redis reads a BLPOP timeout under 1 ms as "forever"
OTHER_SLOTS_SECONDS = 1.0
"""On a cluster, how long a worker whose queues span several slots blocks on its first slot's
wake-up lists before it looks at the other slots' queues again."""


@dataclass(frozen=True, slots=True)
class AckGuard:
    """A script that must run before a finished job may be deleted, sent in the same round trip as the
    reserve that deletes it (`pop_after`). The driver appends a permit key to `keys`; the script sets
    that key when the job may go. Without the permit (the script declined, or could not run) the job
    stays reserved and `held` tells the worker to settle it the long way."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[str | bytes, ...]


@dataclass(slots=True)
class RedisReservedJob:
    driver: RedisDriver
    connection_name: str
    queue: str
    raw: bytes
    attempts: int
    reclaimed: bool
    token: str
    guard: AckGuard | None = None
    held: bool = False
    """Set by `pop_after` when the guard withheld the permit: the job was not deleted."""

    @property
    def key(self) -> str:
        """Stable across reservations (the token is not), so a garbage payload keeps one failed-store uuid."""
        return hashlib.sha1(self.raw).hexdigest()[:16]

    def delete(self) -> bool:
        return self.driver.delete_reserved(self)

    def release(self, delay: float) -> bool:
        return self.driver.release_reserved(self, delay)

    def renew(self) -> bool:
        return self.driver.renew_reserved(self)

    def delete_and_push(self, items: Sequence[tuple[str, str, float]]) -> bool:
        return self.driver.delete_and_push_reserved(self, items)


@dataclass(frozen=True, slots=True)
class SlotGroup:
    """Queues whose keys share a cluster slot, in priority order, and the reserve script's keys for them."""

    queues: list[QueueKeys]
    keys: list[str]

    @classmethod
    def of(cls, queues: list[QueueKeys]) -> SlotGroup:
        return cls(queues, [key for queue in queues for key in queue.all()])


class RedisDriver:
    def __init__(self, config: ConnectionConfig) -> None:
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after = config.retry_after
        self.block_for = config.block_for
        self.prefix = config.prefix
        self.redis = RedisClient(config.url or DEFAULT_REDIS_URL, config.block_for, config.busy_poll_us / 1e6, config.url_key)
        self._keys: dict[str, QueueKeys] = {}
        self._lease = "" if config.retry_after is None else str(config.retry_after)
        self._next_due: float | None = None
        self._group_cache: dict[tuple[str, ...], list[SlotGroup]] = {}
        self._reserve_script = script("reserve")

    def keys(self, queue: str) -> QueueKeys:
        found = self._keys.get(queue)
        if found is None:
            found = queue_keys(self.prefix, queue)
            self.redis.client()  # connects once, learning whether this is a cluster
            if self.redis.cluster and len({slot_of(key) for key in found.all()}) > 1:
                raise DriverError(
                    f"queue {queue!r}: on Redis Cluster a queue's keys must share a slot; "
                    f"name it with a hash tag, e.g. '{{{queue}}}'"
                )
            self._keys[queue] = found
        return found

    # --- pushing ------------------------------------------------------------------------

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        self.redis.run(*self._push_call(payload, queue, delay))

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        """One round trip per chunk of jobs, the chunk pushed all at once: one MULTI/EXEC of plain
        RPUSHes (a delayed job's due time is the server's: those go through the `bulk` script in the
        same transaction). On a cluster, one `bulk` script call per slot of the chunk's queues, the
        calls sent in one pipeline per node."""
        for chunk in bulk_chunks(items):
            ready, delayed = by_queue(chunk)
            self.keys(chunk[0][1])  # connects, learning whether this is a cluster
            if self.redis.cluster:
                self.redis.run_many(bulk_calls(ready, delayed, self.keys, cluster=True))
            else:
                self.redis.transaction(bulk_commands(ready, delayed, self.keys), (script("bulk"),))

    def _push_call(self, payload: str, queue: str, delay: float) -> Call:
        keys = self.keys(queue)
        if delay > 0:
            return script("later"), (keys.delayed, keys.notify), (f"{new_token()}:{payload}", repr(float(delay)))
        return script("push"), (keys.ready, keys.notify), (payload,)

    # --- reserving ----------------------------------------------------------------------

    def pop(self, queues: Sequence[str]) -> RedisReservedJob | None:
        return self.pop_after(None, queues)

    def pop_after(self, finished: ReservedJob | None, queues: Sequence[str]) -> RedisReservedJob | None:
        """Delete `finished` (fenced, as its delete() would) and reserve the next job, in one script call
        per cluster slot of `queues` (one call in all when not on a cluster)."""
        pending = finished if isinstance(finished, RedisReservedJob) and finished.driver is self else None
        if finished is not None and pending is None:
            finished.delete()
        self._next_due = None
        if pending is not None and pending.guard is not None and self.redis.cluster:
            pending.held, pending.guard, pending = True, None, None  # a guard is never given on a cluster
        for group in self._groups(queues):
            if pending is not None and self.redis.cluster and self.keys(pending.queue).slot != group.queues[0].slot:
                pending.delete()
                pending = None
            job = self._reserve(group, pending)
            pending = None
            if job is not None:
                return job
        return None

    def _groups(self, queues: Sequence[str]) -> list[SlotGroup]:
        """The queues by cluster slot (one group when not on a cluster), worked out once per queue list."""
        found = self._group_cache.get(tuple(queues))
        if found is None:
            keys = [self.keys(queue) for queue in queues]
            grouped = group_by_slot(keys) if self.redis.cluster else [keys]
            found = self._group_cache[tuple(queues)] = [SlotGroup.of(group) for group in grouped]
        return found

    def _reserve(self, group: SlotGroup, finished: RedisReservedJob | None) -> RedisReservedJob | None:
        token = new_token()
        if finished is None:
            keys: Sequence[str] = group.keys
            args: tuple[str | bytes, ...] = (token, self._lease, "", b"")
        elif finished.guard is not None:
            return self._reserve_guarded(group, finished, finished.guard, token)
        else:
            done = self.keys(finished.queue)
            keys = [done.reserved, done.attempts, *group.keys]
            args = (token, self._lease, finished.token, finished.raw)
        return self._reserved(group, token, self.redis.run(self._reserve_script, keys, args))

    def _reserve_guarded(self, group: SlotGroup, finished: RedisReservedJob, guard: AckGuard, token: str) -> RedisReservedJob | None:
        """The guard's script, then the reserve that deletes `finished` only with its permit: one round trip."""
        done = self.keys(finished.queue)
        permit = f"{done.ready}:permit:{finished.token}"
        keys = [done.reserved, done.attempts, permit, *group.keys]
        args = (token, self._lease, finished.token, finished.raw, "1")
        granted, result = self.redis.run_guarded(
            (guard.script, (*guard.keys, permit), guard.args), (self._reserve_script, keys, args)
        )
        finished.held, finished.guard = granted != 1, None
        return self._reserved(group, token, result)

    def _reserved(self, group: SlotGroup, token: str, result: Any) -> RedisReservedJob | None:
        """The reserve script's answer: the job it reserved, or None (noting when to look again)."""
        index = int(result[0])
        if index == 0:
            self._note_next_due(float(result[1]) if result[1] else None)
            return None
        return RedisReservedJob(
            self, self.connection_name, group.queues[index - 1].queue, bytes(result[1]), int(result[2]),
            reclaimed=bool(int(result[3])), token=token,
        )

    def _note_next_due(self, seconds: float | None) -> None:
        if seconds is not None and (self._next_due is None or seconds < self._next_due):
            self._next_due = seconds

    # --- blocking -----------------------------------------------------------------------

    def wait_for_job(self, queues: Sequence[str], at_most: float | None = None) -> bool:
        """BLPOP the queues' wake-up lists for `block_for` seconds (0 = until a job comes), never past
        the moment the last pop said a delayed job falls due or a lease expires, nor past `at_most`.
        False when polling."""
        seconds = self._block_seconds(at_most)
        if seconds is None:
            return False
        if seconds < 0:
            return True  # something falls due now: the worker's next pop takes it
        try:
            # a cluster can only block on keys of one slot: the highest-priority group's, for at
            # most OTHER_SLOTS_SECONDS when other slots hold some of the queues
            groups = self._groups(queues)
            if len(groups) > 1:
                seconds = min(seconds, OTHER_SLOTS_SECONDS) if seconds else OTHER_SLOTS_SECONDS
            self.redis.blpop([keys.notify for keys in groups[0].queues], seconds)
        except DriverError:
            return False  # the worker sleeps, then its next pop reports the outage and backs off
        return True

    def wait_and_pop(self, queues: Sequence[str], at_most: float | None = None) -> tuple[bool, RedisReservedJob | None]:
        """`wait_for_job`, then `pop`, in one round trip when not on a cluster: the reserve goes out
        in the same write as the BLPOP and Redis runs it the moment the wait ends.

        Returns (whether it waited, the job reserved on waking or None). A worker stopped while it
        waits closes the connection, which drops the reserve unrun; only a stop in the instant
        between Redis running it and the worker reading its answer leaves that job reserved until
        its lease runs out (`retry_after`), as a worker killed mid-job would.
        """
        seconds = self._block_seconds(at_most)
        if seconds is None:
            return False, None
        if seconds < 0:
            return True, None
        try:
            group = self._groups(queues)[0]  # the first call connects and learns whether this is a cluster
        except DriverError:
            return False, None
        if self.redis.cluster:
            return self.wait_for_job(queues, at_most), None
        token = new_token()
        self._next_due = None
        try:
            result = self.redis.blpop_then_run(
                [keys.notify for keys in group.queues], seconds, self._reserve_script, group.keys,
                (token, self._lease, "", b""),
            )
        except DriverError:
            return False, None
        return True, self._reserved(group, token, result)

    def _block_seconds(self, at_most: float | None = None) -> float | None:
        """How long a wait may block: None when this connection polls, -1 when something is due now,
        0 to block until a job comes; never longer than `at_most` (when given)."""
        if self.block_for is None:
            return None
        seconds = float(self.block_for)
        for limit in (self._next_due, at_most):
            if limit is None:
                continue
            if limit < MIN_BLOCK_SECONDS:
                return -1.0
            seconds = limit if seconds == 0 else min(seconds, limit)
        return max(seconds, MIN_BLOCK_SECONDS) if seconds else 0.0

    # --- fenced changes to a reserved job -----------------------------------------------

    def delete_reserved(self, job: RedisReservedJob) -> bool:
        keys = self.keys(job.queue)
        return bool(self.redis.run(script("delete"), (keys.reserved, keys.attempts), (job.token, job.raw)))

    def delete_and_push_reserved(self, job: RedisReservedJob, items: Sequence[tuple[str, str, float]]) -> bool:
        """Delete the held job and push `items` in one script call. On a cluster where a target queue
        lives in another slot than the job, push first and then delete (at least once: a crash in
        between pushes twice, never loses), after checking the job is still held (renewing it), so a
        lost reservation pushes nothing unless it is lost in between."""
        done = self.keys(job.queue)
        targets = [self.keys(queue) for _, queue, _ in items]
        if self.redis.cluster and any(target.slot != done.slot for target in targets):
            if not self.renew_reserved(job):
                return False
            self.bulk(items)
            return self.delete_reserved(job)
        keys = [done.reserved, done.attempts]
        args: list[str | bytes] = [job.token, job.raw]
        for (payload, _, delay), target in zip(items, targets, strict=True):
            keys += (target.ready, target.delayed, target.notify)
            args += (payload, repr(float(delay)), new_token() if delay > 0 else "")
        return bool(self.redis.run(script("delete_push"), keys, args))

    def release_reserved(self, job: RedisReservedJob, delay: float) -> bool:
        keys = self.keys(job.queue)
        return bool(self.redis.run(
            script("release"), (keys.reserved, keys.delayed, keys.ready, keys.notify),
            (job.token, job.raw, repr(float(max(0.0, delay)))),
        ))

    def renew_reserved(self, job: RedisReservedJob) -> bool:
        keys = self.keys(job.queue)
        return bool(self.redis.run(script("renew"), (keys.reserved,), (job.token, job.raw, self._lease)))

    def renew_many(self, jobs: Sequence[ReservedJob]) -> list[bool]:
        """Renew several held jobs' reservations in one round trip (a pipeline of `renew` calls)."""
        held = [cast(RedisReservedJob, job) for job in jobs]
        replies = self.redis.run_many(
            [(script("renew"), (self.keys(job.queue).reserved,), (job.token, job.raw, self._lease)) for job in held]
        )
        return [reply is not None and not isinstance(reply, Exception) and bool(reply) for reply in replies]

    # --- inspecting ---------------------------------------------------------------------

    def size(self, queue: str) -> int:
        keys = self.keys(queue)
        return int(self.redis.run(script("size"), (keys.ready, keys.delayed, keys.reserved), ()))

    def sizes(self, queue: str) -> QueueSizes:
        """LLEN, ZCARD and ZCOUNT in one read-only script; the oldest wait is the longer of the oldest
        due delayed job's (exact) and the ready head's age since it was pushed (as Laravel reads it)."""
        keys = self.keys(queue)
        found = self.redis.run(script("queue_sizes"), (keys.ready, keys.delayed, keys.reserved), ())
        ready, later, due, held, lapsed = (int(value) for value in found[:5])
        now = float(found[5])
        waits = [now - stamp for stamp in (_number(found[6]), _number(found[7])) if stamp is not None]
        return QueueSizes(queue, ready + due + lapsed, later, held, max(0.0, *waits) if waits else None)

    def queues_with_jobs(self, limit: int) -> list[str]:
        """Redis has no cheap way to list them (that would be a SCAN of the keyspace)."""
        return []

    def clear(self, queue: str) -> int:
        return int(self.redis.run(script("clear"), self.keys(queue).all(), ()))

    def clear_returning(self, queue: str, marker: bytes) -> Cleared:
        """Clear the queue in one script; how many per state and the removed payloads that contain `marker`."""
        found = self.redis.run(script("clear_returning"), self.keys(queue).all(), (marker,))
        return Cleared(int(found[0]), int(found[1]), int(found[2]), [bytes(p) for p in found[3:]])

    def close(self) -> None:
        self.redis.close()


def _number(value: Any) -> float | None:
    """A script's answer as a number: '' (or an unreadable stamp) is None."""
    try:
        number = float(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


__all__ = ["RedisDriver", "RedisReservedJob"]
