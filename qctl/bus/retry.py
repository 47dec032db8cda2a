"""Push failed jobs back onto their original connection and queue, then forget them (`qctl retry`).

The stored payload bytes go back unchanged: attempts live outside the payload,
so a fresh queue entry starts again at attempt 1. The one exception is a job
with a `retry_until` deadline, which (as in Laravel) gets a new deadline from a
fresh instance and is signed again. When the queue and the failed store live in
the same database, the push and the forget happen in one transaction, so a
crash can neither lose the job nor leave it both queued and failed; otherwise
the push comes first (at least once: a crash in between may run it twice).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qctl.connections import ConnectionManager
from qctl.crashpoints import crash_point
from qctl.drivers.base import Driver
from qctl.drivers.sync import SyncDriver
from qctl.errors import NotFoundError, QctlError, UsageError
from qctl.failed.base import FailedJob, FailedJobStore
from qctl.jobs.job import Job
from qctl.limits import MAX_ROW_ID, out_of_bounds
from qctl.payload.signing import SIGNATURE_FIELD, Signer

JobLoader = Callable[[bytes], Job]
"""Verified payload bytes → a fresh job instance (the worker's own path, given by the runtime)."""


@dataclass(frozen=True)
class Retried:
    uuid: str
    connection: str
    queue: str


@dataclass(frozen=True)
class RetryProblem:
    uuid: str
    reason: str


def parse_row_range(text: str) -> tuple[int, int]:
    """`--range 1-5` → (1, 5); a single number is a range of one."""
    low, sep, high = text.partition("-")
    try:
        bounds = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise UsageError(f"--range: expected row ids like 1-5, got {text!r}") from None
    problem = next(filter(None, (out_of_bounds(bound, 0, MAX_ROW_ID, "") for bound in bounds)), None)
    if problem:
        raise UsageError(f"--range {text!r}: row ids are {problem}")
    if bounds[0] > bounds[1]:
        raise UsageError(f"--range: {text!r} starts after it ends")
    return bounds


def select_failed(
    store: FailedJobStore, ids: Sequence[str], queue: str | None = None, ranges: Sequence[str] = ()
) -> list[FailedJob]:
    """The records named by ids (or `all`), a queue and row ranges; every named id must exist."""
    if not ids and queue is None and not ranges:
        raise UsageError("name failed jobs by id, or use `all`, --queue NAME or --range 1-5")
    chosen: dict[str, FailedJob] = {}
    if "all" in ids or queue is not None:
        chosen.update((r.uuid, r) for r in store.all() if "all" in ids or r.queue == queue)
    missing = []
    for uuid in (i for i in ids if i != "all"):
        record = store.find(uuid)
        if record is None:
            missing.append(uuid)
        else:
            chosen[uuid] = record
    if missing:
        raise NotFoundError(f"no failed job with id {', '.join(missing)} (see `qctl failed`); nothing was retried")
    for text in ranges:
        chosen.update((r.uuid, r) for r in store.find_by_row_ids(*parse_row_range(text)))
    return sorted(chosen.values(), key=lambda r: r.id)


class FailedJobRetrier:
    def __init__(
        self, store: FailedJobStore, connections: ConnectionManager, signer: Signer | None, load_job: JobLoader
    ) -> None:
        self.store = store
        self.connections = connections
        self.signer = signer
        self.load_job = load_job

    def retry(self, records: Sequence[FailedJob]) -> tuple[list[Retried], list[RetryProblem]]:
        retried, problems = [], []
        for record in records:
            try:
                self.retry_one(record)
            except QctlError as exc:
                problems.append(RetryProblem(record.uuid, str(exc)))
            else:
                retried.append(Retried(record.uuid, record.connection, record.queue))
        return retried, problems

    def retry_one(self, record: FailedJob) -> None:
        driver = self.connections.get(record.connection)
        if isinstance(driver, SyncDriver):
            # a sync push runs the job here, in this CLI, from bytes read back from a store anyone with
            # write access to it could have forged: stored payloads are untrusted, always
            raise QctlError(
                f"it failed on {record.connection!r}, a sync connection, and retrying would run it inside this "
                "command; dispatch it again from the app, or `qctl forget` it"
            )
        payload = self.payload_to_push(record)
        if shares_database(driver, self.store):
            push_and_forget_in_one_transaction(driver, self.store, record, payload)
            return
        driver.push(payload, record.queue)
        crash_point("retry_after_push_before_forget")
        self.store.forget(record.uuid)

    def payload_to_push(self, record: FailedJob) -> str:
        try:
            text = record.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise QctlError("its payload is not text (a poison payload); `qctl forget` it instead") from None
        try:
            body = json.loads(text)
        except ValueError:
            return text
        if not isinstance(body, dict) or body.get("retryUntil") is None:
            return text
        return self.with_new_deadline(record, body)

    def with_new_deadline(self, record: FailedJob, body: dict[str, Any]) -> str:
        """A fresh instance's retry_until() replaces the spent deadline; the payload is signed again."""
        try:
            job = self.load_job(record.payload)
        except QctlError as exc:
            raise QctlError(f"cannot compute a new retry_until deadline: {exc}") from None
        deadline = job.option("retry_until")
        if isinstance(deadline, dt.datetime):
            deadline = int(deadline.timestamp())
        body["retryUntil"] = deadline if isinstance(deadline, int) else None
        body.pop(SIGNATURE_FIELD, None)
        if self.signer is not None:
            body[SIGNATURE_FIELD] = self.signer.sign(body)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=True)


def shares_database(driver: Driver, store: FailedJobStore) -> bool:
    from qctl.drivers.database import DatabaseDriver
    from qctl.failed.database import DatabaseFailedJobStore

    return (
        isinstance(driver, DatabaseDriver)
        and isinstance(store, DatabaseFailedJobStore)
        and driver.engine is store.engine
    )


def push_and_forget_in_one_transaction(driver: Driver, store: FailedJobStore, record: FailedJob, payload: str) -> None:
    from sqlalchemy import insert, literal_column
    from sqlalchemy.exc import DBAPIError

    from qctl.db.engines import unix_now_sql
    from qctl.db.migrations import ensure_table
    from qctl.drivers.database import DatabaseDriver
    from qctl.failed.database import DatabaseFailedJobStore

    assert isinstance(driver, DatabaseDriver) and isinstance(store, DatabaseFailedJobStore)
    now: Any = literal_column(unix_now_sql(driver.engine))
    row = insert(driver.table).values(
        queue=record.queue, payload=payload, attempts=0, reserved_at=None, available_at=now, created_at=now
    )
    try:
        ensure_table(driver.engine, driver.table)
        with store.transaction("retry a failed job") as conn:
            conn.execute(row)
            if not store.forget_in(conn, record.uuid):
                raise QctlError("it was retried or forgotten meanwhile")
    except DBAPIError as exc:
        raise QctlError(f"cannot push it back: {str(exc.orig).strip().splitlines()[0]}") from exc
