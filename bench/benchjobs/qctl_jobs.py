from __future__ import annotations

import asyncio
import time

import qctl
from benchjobs import COUNTER, LATENCIES, async_client, client


class Incr(qctl.Job):
    def handle(self) -> None:
        client().incr(COUNTER)


class Ping(qctl.Job):
    """Records how long after `sent` (taken just before dispatch) handle() started."""

    def __init__(self, sent: float) -> None:
        self.sent = sent

    def handle(self) -> None:
        client().rpush(LATENCIES, repr(time.time() - self.sent))


class Touch(qctl.Job):
    """Creates a file: a first job to wait for that needs no Redis (startup.py on SQLite)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def handle(self) -> None:
        with open(self.path, "x"):
            pass


class Nap(qctl.Job):
    """Waits as an HTTP call would, then counts itself (concurrency.py, threads)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def handle(self) -> None:
        time.sleep(self.seconds)
        client().incr(COUNTER)


class AsyncNap(qctl.Job):
    """The same wait on the worker's event loop (concurrency.py, async)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle(self) -> None:
        await asyncio.sleep(self.seconds)
        await async_client().incr(COUNTER)
