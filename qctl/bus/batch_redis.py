"""The Redis batch store: one hash per batch, a hash of its members and a list of its failed job ids.

Keys, under the `[batching] table` as namespace (default `job_batches`):
- `<ns>:{<id>}`         hash: id, name, total_jobs, pending_jobs, failed_jobs, options, allow_failures,
                        created_at, cancelled_at, finished_at ('' when unset)
- `<ns>:{<id>}:jobs`    hash: member uuid -> 'state' or 'state:callbacks'
- `<ns>:{<id>}:failed`  list: failed job ids in failure order
- `<ns>:index`          sorted set: batch ids scored by created_at, for recent and prune
The `{<id>}` hash tag keeps one batch's keys in one Redis Cluster slot, so every counter change
is one Lua script (qctl/bus/lua/) over them. The index lives in another slot and is updated by a
separate call: a crash in between leaves a batch out of recent/prune, never a counter wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import redis
from redis import exceptions as rx

from qctl.bus.batch_store import CALLBACK_KINDS, BatchRecord, NewBatch, PushIn, Recorded
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.drivers.redis_client import RedisClient, client_identity, reason_of, refusal, server_of
from qctl.drivers.scripts import RegisteredScripts, Script
from qctl.errors import DriverError, QctlError, StoreUnavailableError

if TYPE_CHECKING:
    from qctl.drivers.redis import AckGuard

PAGE = 500
"""Index entries read (and batches fetched or pruned in one pipeline) per round trip."""
HOT_PATH_POLL_SECONDS = 100e-6
"""How long the success call polls for its reply before sleeping on the socket (the driver's default)."""
SCRIPTS = ("create", "add_jobs", "record_success", "record_failure", "callback_done", "cancel",
           "mark_finished", "prune")


class RedisBatchStore:
    def __init__(self, url: str, namespace: str = "job_batches", clock: Clock = SYSTEM_CLOCK, where: str = "") -> None:
        self.url = url
        self.where = where  # the config key of the URL, for a refusal that retrying cannot heal
        self.namespace = namespace
        self.index = f"{namespace}:index"
        self._clock = clock
        self._client: Any = None
        self._script = RegisteredScripts("qctl.bus", self._redis)
        self._fast = RedisClient(url, None, HOT_PATH_POLL_SECONDS, where)
        self._success = lua_script("record_success")
        self._quick = lua_script("record_quick")

    def keys(self, batch_id: str) -> list[str]:
        """The batch hash, its members hash and its failed list."""
        base = f"{self.namespace}:{{{batch_id}}}"
        return [base, f"{base}:jobs", f"{base}:failed"]

    def create(self, batch: NewBatch) -> bool:
        now = self._now()
        args = [batch.id, batch.name, json.dumps(batch.options), "1" if batch.allows_failures else "0", now]
        with self._errors("create a batch"):
            created = bool(self._run("create", self.keys(batch.id)[:1], args))
            if created:
                self._redis().zadd(self.index, {batch.id: now})
        return created

    def find(self, batch_id: str) -> BatchRecord | None:
        with self._errors("read a batch"):
            found = self._fetch([batch_id])
        return found[0] if found else None

    def recent(self, limit: int | None = None, unfinished: bool = False) -> list[BatchRecord]:
        found: list[BatchRecord] = []
        offset = 0
        with self._errors("list batches"):
            while limit is None or len(found) < limit:
                ids = self._redis().zrevrange(self.index, offset, offset + PAGE - 1)
                found += [r for r in self._fetch(ids) if not unfinished or r.finished_at is None]
                if len(ids) < PAGE:
                    break
                offset += PAGE
        return found if limit is None else found[:limit]

    def _fetch(self, batch_ids: Sequence[str]) -> list[BatchRecord]:
        """The batches that exist, in the order asked; one batch is read in one MULTI (its keys share a slot)."""
        pipe = self._redis().pipeline(transaction=len(batch_ids) == 1)
        for batch_id in batch_ids:
            batch, _, failed = self.keys(batch_id)
            pipe.hgetall(batch)
            pipe.lrange(failed, 0, -1)
        replies = pipe.execute() if batch_ids else []
        pairs = zip(replies[::2], replies[1::2], strict=True)
        return [record_of(fields, failed) for fields, failed in pairs if fields]

    def add_jobs(
        self, batch_id: str, job_uuids: Sequence[str], *, fresh_batch: bool = False, push_in: PushIn | None = None
    ) -> list[str]:
        if push_in is not None:
            raise QctlError("the Redis batch store cannot push jobs inside its add (can_push_with is False)")
        # fresh_batch needs no shortcut here: HSETNX is the membership check
        with self._errors("add jobs to a batch"):
            new = self._run("add_jobs", self.keys(batch_id)[:2], list(dict.fromkeys(job_uuids)))
        if new is None:
            raise QctlError(f"batch {batch_id}: no such batch to add jobs to")
        return [str(uuid) for uuid in new]

    def record_success(self, batch_id: str, job_uuid: str) -> Recorded:
        """Every batched job's one extra call: on the driver's own hot-path connection (hiredis, a
        short busy poll for the reply), not through redis-py's pool."""
        try:
            reply = self._fast.run(self._success, self.keys(batch_id), (job_uuid, str(self._now())))
        except DriverError as exc:
            raise StoreUnavailableError(f"batch store: cannot record a batch job's success: {exc}") from exc
        return recorded_of([part.decode() if isinstance(part, bytes) else part for part in reply])

    def ack_guard(self, reserved: Any, batch_id: str, job_uuid: str) -> AckGuard | None:
        """A success that can ride with the job's deferred delete: its queue lives on this Redis (same
        URL, not a cluster), so the record and the delete go in one round trip (record_quick.lua)."""
        from qctl.drivers.redis import AckGuard, RedisReservedJob

        if not isinstance(reserved, RedisReservedJob):
            return None
        client = reserved.driver.redis
        if client.cluster or client.url != self.url:
            return None
        return AckGuard(self._quick, tuple(self.keys(batch_id)), (job_uuid,))

    def record_failure(self, batch_id: str, job_uuid: str, skipped: Sequence[str] = ()) -> Recorded:
        args: list[str | int] = [job_uuid, self._now(), *skipped]
        with self._errors("record a batch job's failure"):
            return recorded_of(self._run("record_failure", self.keys(batch_id), args))

    def callback_done(self, batch_id: str, job_uuid: str, kind: str) -> None:
        with self._errors("mark a batch callback done"):
            self._run("callback_done", self.keys(batch_id)[1:2], [job_uuid, kind])

    def cancel(self, batch_id: str) -> None:
        with self._errors("cancel a batch"):
            self._run("cancel", self.keys(batch_id)[:1], [self._now()])

    def mark_finished(self, batch_id: str) -> None:
        with self._errors("finish a batch"):
            self._run("mark_finished", self.keys(batch_id)[:1], [self._now()])

    def delete(self, batch_id: str) -> bool:
        with self._errors("delete a batch"):
            client = self._redis()
            batch, jobs, failed = self.keys(batch_id)
            existed = bool(client.delete(batch))
            client.delete(jobs, failed)  # batch first: a half-deleted batch is no batch at all
            client.zrem(self.index, batch_id)
        return existed

    def prune_finished(self, before: int) -> int:
        return self._prune("finished", before)

    def prune_unfinished(self, before: int) -> int:
        return self._prune("unfinished", before)

    def prune_cancelled(self, before: int) -> int:
        return self._prune("cancelled", before)

    def _prune(self, rule: str, before: int) -> int:
        """Walk the index up to `before` (finished_at never precedes created_at), one script per batch."""
        pruned = offset = 0
        with self._errors("prune batches"):
            client = self._redis()
            while True:
                ids = client.zrangebyscore(self.index, "-inf", f"({before}", start=offset, num=PAGE)
                outcomes = self._prune_page(ids, rule, before)
                gone = [batch_id for batch_id, outcome in zip(ids, outcomes, strict=True) if outcome != 0]
                if gone:
                    client.zrem(self.index, *gone)
                pruned += sum(1 for outcome in outcomes if outcome == 1)
                offset += len(ids) - len(gone)  # kept ones stay in the index ahead of the next page
                if len(ids) < PAGE:
                    return pruned

    def _prune_page(self, ids: Sequence[str], rule: str, before: int) -> list[int]:
        if not ids:
            return []
        pipe = self._redis().pipeline(transaction=False)
        for batch_id in ids:
            self._script("prune")(keys=self.keys(batch_id), args=[rule, before], client=pipe)
        return [int(outcome) for outcome in pipe.execute()]

    def can_push_with(self, driver: Any) -> bool:
        return False

    def close(self) -> None:
        self._fast.close()
        if self._client is not None:
            self._client.close()
            self._client = None

    def _now(self) -> int:
        return int(self._clock.time())

    def _redis(self) -> Any:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=30,
                                                decode_responses=True, **client_identity())
        return self._client

    def _run(self, name: str, keys: list[str], args: Sequence[str | int]) -> Any:
        return self._script(name)(keys=keys, args=list(args))

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except rx.RedisError as exc:
            refused = refusal(exc, self.where, server_of(self.url))
            if refused is not None:
                raise refused from exc
            raise StoreUnavailableError(f"batch store at Redis {server_of(self.url)}: cannot {action}: {reason_of(exc)}") from exc


def lua_script(name: str) -> Script:
    source = files("qctl.bus").joinpath(f"lua/{name}.lua").read_bytes()
    return Script(name, source, hashlib.sha1(source).hexdigest())


def recorded_of(reply: Sequence[Any]) -> Recorded:
    known, fresh, pending, failed, due = reply
    kinds = set(str(due).split(","))
    return Recorded(known=bool(known), fresh=bool(fresh), pending_jobs=int(pending), failed_jobs=int(failed),
                    due=tuple(kind for kind in CALLBACK_KINDS if kind in kinds))


def _optional(value: str | None) -> int | None:
    return int(value) if value else None


def record_of(fields: dict[str, str], failed: list[str]) -> BatchRecord:
    return BatchRecord(
        id=fields["id"],
        name=fields.get("name", ""),
        total_jobs=int(fields.get("total_jobs", 0)),
        pending_jobs=int(fields.get("pending_jobs", 0)),
        failed_jobs=int(fields.get("failed_jobs", 0)),
        failed_job_ids=tuple(failed),
        options=json.loads(fields.get("options") or "{}"),
        created_at=int(fields.get("created_at", 0)),
        cancelled_at=_optional(fields.get("cancelled_at")),
        finished_at=_optional(fields.get("finished_at")),
    )
