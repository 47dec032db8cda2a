"""The single seam for time: tests replace it so loops never really sleep."""

from __future__ import annotations

import time


class Clock:
    """Wall time, monotonic time and sleeping, swappable as one object."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = Clock()
