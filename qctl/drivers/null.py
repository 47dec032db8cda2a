"""The null driver: pushes are discarded, nothing is ever reserved."""

from __future__ import annotations

from collections.abc import Sequence

from qctl.config import ConnectionConfig
from qctl.drivers.base import ReservedJob


class NullDriver:
    def __init__(self, config: ConnectionConfig) -> None:
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after = config.retry_after

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        return None

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        return None

    def pop(self, queues: Sequence[str]) -> ReservedJob | None:
        return None

    def size(self, queue: str) -> int:
        return 0

    def clear(self, queue: str) -> int:
        return 0

    def close(self) -> None:
        return None
