"""The null failed store (`QCTL_FAILED_DRIVER=null`): failures are not kept."""

from __future__ import annotations

import datetime as dt

from qctl.failed.base import FailedCounts, FailedJob


class NullFailedJobStore:
    def log(self, connection: str, queue: str, payload: bytes, exception: str, uuid: str) -> str:
        return uuid

    def all(self) -> list[FailedJob]:
        return []

    def find(self, uuid: str) -> FailedJob | None:
        return None

    def find_by_row_ids(self, low: int, high: int) -> list[FailedJob]:
        return []

    def forget(self, uuid: str) -> bool:
        return False

    def flush(self, hours: float | None = None) -> int:
        return 0

    def flush_returning(self, hours: float | None, marker: bytes) -> tuple[int, list[bytes]]:
        return 0, []

    def prune(self, before: dt.datetime) -> int:
        return 0

    def count(self) -> int:
        return 0

    def count_by_queue(self) -> dict[tuple[str, str], FailedCounts]:
        return {}
