"""The failed-job store contract and the record it keeps."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from qctl.errors import PayloadError
from qctl.payload.envelope import load_json_object

_BASE64 = "base64:"


@dataclass(frozen=True)
class FailedJob:
    id: int
    uuid: str
    connection: str
    queue: str
    payload: bytes
    exception: str
    failed_at: dt.datetime

    @property
    def error_line(self) -> str:
        """The first line of the stored exception: what `qctl failed` shows."""
        return self.exception.strip().splitlines()[0] if self.exception.strip() else ""


class FailedJobStore(Protocol):
    def log(self, connection: str, queue: str, payload: bytes, exception: str, uuid: str) -> str:
        """Record a failure; idempotent on uuid. Raises StoreUnavailableError when it cannot."""

    def all(self) -> list[FailedJob]: ...
    def find(self, uuid: str) -> FailedJob | None: ...
    def find_by_row_ids(self, low: int, high: int) -> list[FailedJob]: ...
    def forget(self, uuid: str) -> bool: ...
    def flush(self, hours: float | None = None) -> int: ...
    def flush_returning(self, hours: float | None, marker: bytes) -> tuple[int, list[bytes]]:
        """`flush`, and the deleted payloads that contain `marker` (unique jobs' locks to release)."""
    def prune(self, before: dt.datetime) -> int: ...
    def count(self) -> int: ...


def job_class_of(payload: bytes) -> str:
    """The job class a failed payload names (its displayName), without building the job."""
    try:
        body = load_json_object(payload)
    except PayloadError:
        return "(unreadable payload)"
    name = body.get("displayName") or (body.get("data") or {}).get("commandName")
    return str(name) if name else "(unknown)"


@dataclass(frozen=True)
class FailedFilter:
    """What `qctl failed` lists: newest first, narrowed by queue, job class and age, at most `limit`."""

    queue: str | None = None
    job_class: str | None = None
    """The class as listed (`app.jobs.Ship`, the payload's displayName)."""
    since: dt.datetime | None = None
    """Naive UTC, as stored."""
    limit: int | None = None

    def keeps(self, record: FailedJob, class_of: str) -> bool:
        return ((self.queue is None or record.queue == self.queue)
                and (self.job_class is None or class_of == self.job_class)
                and (self.since is None or record.failed_at >= self.since))


def search(store: FailedJobStore, wanted: FailedFilter, class_of: Callable[[bytes], str]) -> list[FailedJob]:
    """The store's own query when it has one (the database: filtered and limited in SQL, without
    reading every payload); else every record, filtered here."""
    own = getattr(store, "search", None)
    if own is not None:
        found: list[FailedJob] = own(wanted)
        return found
    kept = [r for r in store.all() if wanted.keeps(r, class_of(r.payload))]
    return kept[: wanted.limit] if wanted.limit is not None else kept


@dataclass(frozen=True)
class FailedCounts:
    total: int = 0
    last_hour: int = 0
    last_minute: int = 0


@runtime_checkable
class CountsByQueue(Protocol):
    """Optional, of a FailedJobStore: how many failed jobs each (connection, queue) has, in all and in
    the last hour and minute, creating nothing (a store whose table does not exist has none)."""

    def count_by_queue(self) -> dict[tuple[str, str], FailedCounts]: ...


def payload_to_text(raw: bytes) -> str:
    """Payload bytes as storable text, byte-exact: base64 when they are not clean UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text or text.startswith(_BASE64):
        return _BASE64 + base64.b64encode(raw).decode("ascii")
    return text


def text_to_payload(text: str) -> bytes:
    if text.startswith(_BASE64):
        return base64.b64decode(text[len(_BASE64):])
    return text.encode("utf-8")


def clean_text(text: str) -> str:
    """Exception text any database and JSON accept: no lone surrogates, no NUL."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
