"""Per-job timeouts that stop a job even when it is stuck in C code holding the GIL.

Two layers, because a Python signal handler (or a watchdog thread) only runs
when the interpreter gets control back, which a C call holding the GIL never gives:

- soft, at `timeout`: a SIGALRM handler does the bookkeeping (fail the job, or
  release it for its next attempt), then ends the process;
- hard, at `timeout + grace`: faulthandler's watchdog is a C thread that needs no
  GIL; it dumps every thread's stack to stderr and ends the process. When the
  soft layer does run, it re-arms the hard one so its bookkeeping gets `grace`
  seconds of its own before being cut off.

Either way the worker exits with status 1 (EXIT_TIMED_OUT; faulthandler's exit
status is always 1, so the soft layer uses the same) and its process manager
starts a fresh one. A job the hard layer stopped stays reserved and comes back
after `retry_after`, its attempt (and a stall) counted.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType

from qctl.worker.stop import EXIT_ERROR

log = logging.getLogger("qctl.worker")

GRACE_SECONDS = 2.0
"""How long after its timeout a job stuck in C code is cut off (and how long timeout bookkeeping may take)."""

EXIT_TIMED_OUT = EXIT_ERROR
"""Exit status of a worker whose job timed out, from either layer."""

TimeoutGuard = Callable[[float | None, Callable[[], None]], AbstractContextManager[None]]


@contextmanager
def job_timeout(seconds: float | None, on_timeout: Callable[[], None], grace: float = GRACE_SECONDS) -> Iterator[None]:
    """Run the body with a deadline; `on_timeout` runs (best effort) before the process exits."""
    if not seconds or seconds <= 0:
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        faulthandler.dump_traceback_later(grace, exit=True)
        try:
            on_timeout()
        except BaseException:
            log.exception("timeout bookkeeping failed; the job comes back after retry_after")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_TIMED_OUT)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds + grace, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def no_timeout(seconds: float | None, on_timeout: Callable[[], None]) -> Iterator[None]:
    """For jobs run inside the caller's process (sync driver, dispatch_sync): never end that process."""
    yield
