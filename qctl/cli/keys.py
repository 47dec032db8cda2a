"""Single key presses from the terminal, for full-screen commands (`qctl top`).

While `keys()` is open the terminal is in cbreak mode (keys arrive one at a time, unechoed;
Ctrl-C still interrupts); the previous mode is restored however the block ends. Without a
terminal on stdin nothing is read and the wait simply passes.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

WaitForKey = Callable[[float], str]
"""wait(seconds) → the keys pressed ('' when none came in that time)."""


@contextmanager
def keys(stream: TextIO | None = None) -> Iterator[WaitForKey]:
    stream = stream or sys.stdin
    if not stream.isatty():
        yield _no_keys
        return
    import termios
    import tty

    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield lambda seconds: _read_within(fd, seconds)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_within(fd: int, seconds: float) -> str:
    ready, _, _ = select.select([fd], [], [], max(0.0, seconds))
    if not ready:
        return ""
    return os.read(fd, 64).decode("utf-8", "replace")


def _no_keys(seconds: float) -> str:
    time.sleep(max(0.0, seconds))
    return ""
