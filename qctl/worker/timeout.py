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
    faulthandler.dump_traceback_later(seconds + grace, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)
