"""Signal handling in one place: installed on entry, the previous handlers restored on exit.

The handlers only set flags, so a running job always finishes: TERM/INT/QUIT ask
the worker to quit after the current job, USR2 pauses taking jobs, CONT resumes.
While the worker is idle and waiting, a quit request interrupts the wait at once.
Parents of worker processes (listen, supervise) forward signals with `forwarded`.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]


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

    handlers: dict[int, Handler] = {
        signal.SIGTERM: quit_after_job,
        signal.SIGINT: quit_after_job,
        signal.SIGQUIT: quit_after_job,
        signal.SIGUSR2: pause,
        signal.SIGCONT: resume,
    }
    with installed(handlers):
        yield flags


@contextmanager
def installed(handlers: dict[int, Handler]) -> Iterator[None]:
    """The one place qctl sets signal handlers: the previous ones come back when the block ends."""
    previous: dict[int, Any] = {}
    try:
        for signum, handler in handlers.items():
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def forwarded(child: Callable[[], subprocess.Popen[Any] | None], stop_signals: dict[int, int],
              passed_on: tuple[int, ...] = (), on_stop: Callable[[int], None] | None = None) -> Iterator[None]:
    """For a parent of a worker process (listen, supervise): pass signals on to the current child.

    A stop signal becomes `stop_signals[signum]` for the child and calls `on_stop`;
    `passed_on` signals (pause, resume) go to the child unchanged.
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        if on_stop is not None:
            on_stop(signum)
        _send(child(), stop_signals[signum])

    def pass_on(signum: int, frame: FrameType | None) -> None:
        _send(child(), signum)

    handlers: dict[int, Handler] = {signum: stop for signum in stop_signals}
    handlers.update({signum: pass_on for signum in passed_on})
    with installed(handlers):
        yield


def _send(process: subprocess.Popen[Any] | None, signum: int) -> None:
    if process is not None and process.poll() is None:
        with suppress(ProcessLookupError):
            process.send_signal(signum)


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
