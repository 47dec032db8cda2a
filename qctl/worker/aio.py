"""`async def handle(self)` jobs: where their coroutines run, and how their timeout cancels them.

A worker runs every coroutine on one event loop. With one slot the loop lives in the worker's
own thread and each job's coroutine runs to completion on it before the next job; with
`--concurrency N` the loop has a thread of its own and each slot thread hands its job's
coroutine over and waits for it, so up to N coroutines are in flight together.

A job's timeout cancels its coroutine (`asyncio.timeout`): the job is a timed-out attempt and
the worker goes on. The worker's own deadline for that job is set `LOOP_GRACE` seconds later:
when the cancel cannot happen because sync code inside a coroutine blocks the loop, that
deadline treats the job as a thread that ran over (see `qctl.worker.timeout`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from qctl.errors import JobTimedOutError

LOOP_GRACE = 1.0
"""Seconds after an async job's timeout before its worker concludes the event loop is blocked."""


class AsyncJobTimedOut(JobTimedOutError):
    """An async job's coroutine was cancelled at its timeout; the worker settles it and goes on."""


async def _within(coroutine: Coroutine[Any, Any, Any], seconds: float | None, what: str) -> Any:
    if seconds is None:
        return await coroutine
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            return await coroutine
    except TimeoutError:
        raise AsyncJobTimedOut(what) from None


class EventLoops:
    """The worker's event loop: started on the first async job, on this thread or one of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._here: asyncio.AbstractEventLoop | None = None
        self._shared: asyncio.AbstractEventLoop | None = None
        self.threaded = False
        """Set by a worker with several slots: coroutines run on a loop thread shared by every slot."""

    def run(self, coroutine: Coroutine[Any, Any, Any], seconds: float | None = None, what: str = "") -> Any:
        """Run a job's coroutine to its end, cancelling it after `seconds` (None: no limit)."""
        guarded = _within(coroutine, seconds, what)
        if self.threaded:
            return asyncio.run_coroutine_threadsafe(guarded, self._loop_thread()).result()
        if _loop_running():  # dispatch_sync() from async code: this thread's loop is busy
            return _run_beside(guarded)
        if self._here is None:
            self._here = asyncio.new_event_loop()
        return self._here.run_until_complete(guarded)

    def _loop_thread(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._shared is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="qctl-async", daemon=True).start()
                self._shared = loop
            return self._shared

    def close(self) -> None:
        loop, self._shared = self._shared, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        here, self._here = self._here, None
        if here is not None:
            here.close()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_beside(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end on a fresh loop in another thread, and wait for it."""
    outcome: dict[str, Any] = {}

    def main() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # handed back to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=main, name="qctl-async-sync")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
