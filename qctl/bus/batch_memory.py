"""A batch store in dicts, for tests (`[batching] driver = "memory"`): process-local.

The same member states and counter rules as the SQL store (see qctl.bus.batch_store), each
outcome applied under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from qctl.bus.batch_database import Tally, crossed, in_order
from qctl.bus.batch_store import BatchRecord, NewBatch, PushIn, Recorded
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.errors import QctlError

PENDING, OK, FAILED, SKIPPED = "pending", "ok", "failed", "skipped"


@dataclass
class Member:
    state: str = PENDING
    callbacks: set[str] = field(default_factory=set)


class MemoryBatchStore:
    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._batches: dict[str, BatchRecord] = {}
        self._members: dict[str, dict[str, Member]] = {}
        self._mutex = threading.Lock()

    def _now(self) -> int:
        return int(self._clock.time())

    def create(self, batch: NewBatch) -> bool:
        with self._mutex:
            if batch.id in self._batches:
                return False
            self._batches[batch.id] = BatchRecord(batch.id, batch.name, 0, 0, 0, (), dict(batch.options), self._now())
            self._members[batch.id] = {}
            return True

    def find(self, batch_id: str) -> BatchRecord | None:
        with self._mutex:
            return self._batches.get(batch_id)

    def recent(self, limit: int | None = None, unfinished: bool = False) -> list[BatchRecord]:
        with self._mutex:
            found = [b for b in reversed(self._batches.values()) if not unfinished or b.finished_at is None]
        found.sort(key=lambda b: b.created_at, reverse=True)
        return found[:limit] if limit is not None else found

    def add_jobs(
        self, batch_id: str, job_uuids: Sequence[str], *, fresh_batch: bool = False, push_in: PushIn | None = None
    ) -> list[str]:
        with self._mutex:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise QctlError(f"batch {batch_id}: no such batch to add jobs to")
            members = self._members[batch_id]
            new = [uuid for uuid in dict.fromkeys(job_uuids) if uuid not in members]
            if new and push_in is not None:
                push_in(None, new)  # before anything changes: a failed push adds nothing
            for uuid in new:
                members[uuid] = Member()
            if new:
                self._batches[batch_id] = replace(batch, total_jobs=batch.total_jobs + len(new),
                                                  pending_jobs=batch.pending_jobs + len(new), finished_at=None)
            return new

    def record_success(self, batch_id: str, job_uuid: str) -> Recorded:
        with self._mutex:
            found = self._member(batch_id, job_uuid)
            if found is None:
                return Recorded(known=False)
            batch, member = found
            before = _tally(batch)
            if member.state not in (PENDING, FAILED):
                return _unchanged(before, member)
            remaining = tuple(uuid for uuid in before.failed_ids if uuid != job_uuid)
            after = replace(before, pending=max(0, before.pending - 1), failed_ids=remaining)
            return self._settle(batch, member, OK, before, after, {})

    def record_failure(self, batch_id: str, job_uuid: str, skipped: Sequence[str] = ()) -> Recorded:
        with self._mutex:
            found = self._member(batch_id, job_uuid)
            if found is None:
                return Recorded(known=False)
            batch, member = found
            before = _tally(batch)
            if member.state != PENDING:
                return _unchanged(before, member)
            dropped = 0
            for uuid in dict.fromkeys(u for u in skipped if u != job_uuid):
                link = self._members[batch_id].get(uuid)
                if link is not None and link.state == PENDING:
                    link.state = SKIPPED
                    dropped += 1
            after = Tally(max(0, before.pending - dropped), before.failed + 1, (*before.failed_ids, job_uuid))
            cancels = before.failed == 0 and not batch.options.get("allowFailures") and batch.cancelled_at is None
            now = self._now()
            extra = {"cancelled_at": now, "finished_at": batch.finished_at or now} if cancels else {}
            return self._settle(batch, member, FAILED, before, after, extra)

    def _member(self, batch_id: str, job_uuid: str) -> tuple[BatchRecord, Member] | None:
        batch = self._batches.get(batch_id)
        member = self._members.get(batch_id, {}).get(job_uuid)
        return None if batch is None or member is None else (batch, member)

    def _settle(self, batch: BatchRecord, member: Member, state: str, before: Tally, after: Tally,
                extra: dict[str, Any]) -> Recorded:
        due = in_order(member.callbacks | crossed(before, after))
        member.state, member.callbacks = state, set(due)
        values: dict[str, Any] = {"pending_jobs": after.pending, "failed_jobs": after.failed,
                                  "failed_job_ids": after.failed_ids, **extra}
        if before.pending > 0 >= after.pending:
            values["finished_at"] = self._now()
        self._batches[batch.id] = replace(batch, **values)
        return Recorded(known=True, fresh=True, pending_jobs=after.pending, failed_jobs=after.failed, due=due)

    def callback_done(self, batch_id: str, job_uuid: str, kind: str) -> None:
        with self._mutex:
            found = self._member(batch_id, job_uuid)
            if found is not None:
                found[1].callbacks.discard(kind)

    def cancel(self, batch_id: str) -> None:
        with self._mutex:
            batch = self._batches.get(batch_id)
            if batch is not None and batch.cancelled_at is None:
                now = self._now()
                self._batches[batch_id] = replace(batch, cancelled_at=now, finished_at=batch.finished_at or now)

    def mark_finished(self, batch_id: str) -> None:
        with self._mutex:
            batch = self._batches.get(batch_id)
            if batch is not None:
                self._batches[batch_id] = replace(batch, finished_at=self._now())

    def delete(self, batch_id: str) -> bool:
        with self._mutex:
            self._members.pop(batch_id, None)
            return self._batches.pop(batch_id, None) is not None

    def prune_finished(self, before: int) -> int:
        return self._prune(lambda b: b.finished_at is not None and b.finished_at < before)

    def prune_unfinished(self, before: int) -> int:
        return self._prune(lambda b: b.finished_at is None and b.created_at < before)

    def prune_cancelled(self, before: int) -> int:
        return self._prune(lambda b: b.cancelled_at is not None and b.created_at < before)

    def _prune(self, rule: Any) -> int:
        with self._mutex:
            gone = [batch_id for batch_id, batch in self._batches.items() if rule(batch)]
            for batch_id in gone:
                del self._batches[batch_id]
                self._members.pop(batch_id, None)
            return len(gone)

    def ack_guard(self, reserved: Any, batch_id: str, job_uuid: str) -> None:
        return None

    def can_push_with(self, driver: Any) -> bool:
        return False

    def close(self) -> None:
        return None


def _tally(batch: BatchRecord) -> Tally:
    return Tally(batch.pending_jobs, batch.failed_jobs, batch.failed_job_ids)


def _unchanged(tally: Tally, member: Member) -> Recorded:
    return Recorded(known=True, fresh=False, pending_jobs=tally.pending, failed_jobs=tally.failed,
                    due=in_order(member.callbacks))
