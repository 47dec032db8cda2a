"""Signal handling in one place: installed on entry, the previous handlers restored on exit.

The handlers only set flags, so a running job always finishes: TERM/INT/QUIT ask
the worker to quit after the current job, USR2 pauses taking jobs, CONT resumes.
While the worker is idle and waiting, a quit request interrupts the wait at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any


class IdleInterrupted(Exception):
    """Raised out of an idle wait when the worker was asked to quit."""


@dataclass
class WorkerFlags:
    should_quit: bool = False
    paused: bool = False
    idle: bool = False


@contextmanager
def handle_worker_signals(flags: WorkerFlags) -> Iterator[WorkerFlags]:
    def quit_after_job(signum: int, frame: FrameType | None) -> None:
        flags.should_quit = True
        if flags.idle:
            raise IdleInterrupted()

    def pause(signum: int, frame: FrameType | None) -> None:
        flags.paused = True

    def resume(signum: int, frame: FrameType | None) -> None:
        flags.paused = False

    handlers: dict[int, Any] = {
        signal.SIGTERM: quit_after_job,
        signal.SIGINT: quit_after_job,
        signal.SIGQUIT: quit_after_job,
        signal.SIGUSR2: pause,
        signal.SIGCONT: resume,
    }
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield flags
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def idle(flags: WorkerFlags) -> Iterator[None]:
    """Mark a wait (sleeping, blocking on the store) as interruptible by a quit request."""
    flags.idle = True
    try:
        if flags.should_quit:  # checked after raising the flag, so no signal slips in between
            raise IdleInterrupted()
        yield
    finally:
        flags.idle = False
