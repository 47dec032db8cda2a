"""The failed-job store contract and the record it keeps."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Protocol

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
