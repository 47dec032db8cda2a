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
import os
from collections.abc import Sequence
from dataclasses import dataclass

from qctl.config import DEFAULT_REDIS_URL, ConnectionConfig
from qctl.drivers.base import ReservedJob
from qctl.drivers.redis_client import Call, RedisClient
from qctl.drivers.redis_keys import QueueKeys, group_by_slot, queue_keys, slot_of
from qctl.drivers.scripts import script
from qctl.errors import DriverError

BULK_CHUNK = 500
MIN_BLOCK_SECONDS = 0.01  # Redis reads a BLPOP timeout under 1 ms as "forever"


def new_token() -> str:
    return os.urandom(8).hex()


@dataclass
class RedisReservedJob:
    driver: RedisDriver
    connection_name: str
    queue: str
    raw: bytes
    attempts: int
    reclaimed: bool
    token: str

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


class RedisDriver:
    def __init__(self, config: ConnectionConfig) -> None:
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after = config.retry_after
        self.block_for = config.block_for
        self.prefix = config.prefix
        self.redis = RedisClient(config.url or DEFAULT_REDIS_URL, config.block_for)
        self._keys: dict[str, QueueKeys] = {}
        self._lease = "" if config.retry_after is None else str(config.retry_after)
        self._next_due: float | None = None

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
        """One pipeline (one round trip) per chunk of jobs."""
        for start in range(0, len(items), BULK_CHUNK):
            self.redis.run_many([self._push_call(*item) for item in items[start:start + BULK_CHUNK]])

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
        for group in self._groups(queues):
            if pending is not None and self.redis.cluster and self.keys(pending.queue).slot != group[0].slot:
                pending.delete()
                pending = None
            job = self._reserve(group, pending)
            pending = None
            if job is not None:
                return job
        return None

    def _groups(self, queues: Sequence[str]) -> list[list[QueueKeys]]:
        keys = [self.keys(queue) for queue in queues]
        return group_by_slot(keys) if self.redis.cluster else [keys]

    def _reserve(self, group: list[QueueKeys], finished: RedisReservedJob | None) -> RedisReservedJob | None:
        token = new_token()
        keys: list[str] = []
        args: list[str | bytes] = [token, self._lease, "", b""]
        if finished is not None:
            done = self.keys(finished.queue)
            keys += (done.reserved, done.attempts)
            args[2], args[3] = finished.token, finished.raw
        for queue in group:
            keys += queue.all()
        result = self.redis.run(script("reserve"), keys, args)
        index = int(result[0])
        if index == 0:
            self._note_next_due(float(result[1]) if result[1] else None)
            return None
        return RedisReservedJob(
            self, self.connection_name, group[index - 1].queue, bytes(result[1]), int(result[2]),
            reclaimed=bool(int(result[3])), token=token,
        )

    def _note_next_due(self, seconds: float | None) -> None:
        if seconds is not None and (self._next_due is None or seconds < self._next_due):
            self._next_due = seconds

    # --- blocking -----------------------------------------------------------------------

    def wait_for_job(self, queues: Sequence[str]) -> bool:
        """BLPOP the queues' wake-up lists for `block_for` seconds (0 = until a job comes), never past
        the moment the last pop said a delayed job falls due or a lease expires. False when polling."""
        if self.block_for is None:
            return False
        timeout = float(self.block_for)
        if self._next_due is not None:
            if self._next_due < MIN_BLOCK_SECONDS:
                return True
            timeout = self._next_due if timeout == 0 else min(timeout, self._next_due)
        try:
            # a cluster can only block on keys of one slot: the highest-priority group's
            first = self._groups(queues)[0]
            self.redis.blpop([keys.notify for keys in first], max(timeout, MIN_BLOCK_SECONDS) if timeout else 0)
        except DriverError:
            return False  # the worker sleeps, then its next pop reports the outage and backs off
        return True

    # --- fenced changes to a reserved job -----------------------------------------------

    def delete_reserved(self, job: RedisReservedJob) -> bool:
        keys = self.keys(job.queue)
        return bool(self.redis.run(script("delete"), (keys.reserved, keys.attempts), (job.token, job.raw)))

    def release_reserved(self, job: RedisReservedJob, delay: float) -> bool:
        keys = self.keys(job.queue)
        return bool(self.redis.run(
            script("release"), (keys.reserved, keys.delayed, keys.ready, keys.notify),
            (job.token, job.raw, repr(float(max(0.0, delay)))),
        ))

    def renew_reserved(self, job: RedisReservedJob) -> bool:
        keys = self.keys(job.queue)
        return bool(self.redis.run(script("renew"), (keys.reserved,), (job.token, job.raw, self._lease)))

    # --- inspecting ---------------------------------------------------------------------

    def size(self, queue: str) -> int:
        keys = self.keys(queue)
        return int(self.redis.run(script("size"), (keys.ready, keys.delayed, keys.reserved), ()))

    def clear(self, queue: str) -> int:
        return int(self.redis.run(script("clear"), self.keys(queue).all(), ()))

    def close(self) -> None:
        self.redis.close()


__all__ = ["RedisDriver", "RedisReservedJob"]
