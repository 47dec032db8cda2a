"""The sync driver: a push runs the job at once, in the caller's process.

The runner is injected by the runtime, so this module knows nothing of workers.
Delays are ignored, as in Laravel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qctl.config import ConnectionConfig
from qctl.drivers.base import ReservedJob


class SyncDriver:
    def __init__(self, config: ConnectionConfig, runner: Callable[[str, str, bytes], None]) -> None:
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after: int | None = None  # a job runs inside push(): nothing is ever reserved
        self._runner = runner

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        self._runner(self.connection_name, queue, payload.encode("utf-8"))

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        for payload, queue, delay in items:
            self.push(payload, queue, delay)

    def pop(self, queues: Sequence[str]) -> ReservedJob | None:
        return None

    def size(self, queue: str) -> int:
        return 0

    def clear(self, queue: str) -> int:
        return 0

    def close(self) -> None:
        return None
