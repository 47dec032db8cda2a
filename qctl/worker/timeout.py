"""Per-job timeouts that stop a job even when it is stuck in C code holding the GIL.

Two layers: at `timeout` a SIGALRM handler does the bookkeeping (fail or release
the job) and exits the process; if the interpreter never gets control back (a
C call holding the GIL), faulthandler's watchdog thread, which needs no GIL,
dumps the stack and exits the process `grace` seconds later. Either way the
worker exits non-zero and its process manager starts a fresh one.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from qctl.worker.stop import EXIT_ERROR

log = logging.getLogger("qctl.worker")
GRACE_SECONDS = 2.0


@contextmanager
def job_timeout(seconds: float | None, on_timeout: Callable[[], None], grace: float = GRACE_SECONDS) -> Iterator[None]:
    """Run the body with a deadline; `on_timeout` runs (best effort) before the process exits."""
    if not seconds or seconds <= 0:
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        try:
            on_timeout()
        except BaseException:
            log.exception("timeout bookkeeping failed")
        finally:
            sys.stderr.flush()
            os._exit(EXIT_ERROR)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    HARD_DEADLINE.cover(seconds + grace)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        HARD_DEADLINE.release()
        signal.signal(signal.SIGALRM, previous)


class HardDeadline:
    """faulthandler's watchdog, which may stay armed between back-to-back jobs of a worker.

    Arming or cancelling it starts or joins a C thread: more time than a Redis round trip.
    Inside `between_jobs()` (the worker's loop) a finished job leaves it armed; the next job
    re-arms it only when the deadline set does not fit (at most REARM_SLACK late), and the
    worker calls `disarm()` before it waits. Everywhere else each job arms and cancels it.
    """

    def __init__(self) -> None:
        self.until: float | None = None
        self.lingering = False

    def cover(self, seconds: float) -> None:
        due = time.monotonic() + seconds
        if self.until is not None and due <= self.until <= due + REARM_SLACK:
            return
        slack = REARM_SLACK if self.lingering else 0.0
        faulthandler.dump_traceback_later(seconds + slack, exit=True)
        self.until = due + slack

    def release(self) -> None:
        if not self.lingering:
            self.disarm()

    def disarm(self) -> None:
        if self.until is not None:
            faulthandler.cancel_dump_traceback_later()
            self.until = None

    @contextmanager
    def between_jobs(self) -> Iterator[None]:
        self.lingering = True
        try:
            yield
        finally:
            self.lingering = False
            self.disarm()


REARM_SLACK = 1.0
"""How much later than `timeout + grace` a lingering watchdog may fire (it is re-armed once a second at most)."""
HARD_DEADLINE = HardDeadline()
