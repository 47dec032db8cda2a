"""A monotonic-time throttle: keeps cache reads and psutil calls out of the hot loop."""

from __future__ import annotations

from qctl.clock import SYSTEM_CLOCK, Clock


class Throttle:
    """`due()` is True at most once every `seconds`, and always on the first call."""

    def __init__(self, seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.seconds = seconds
        self.clock = clock
        self.last: float | None = None

    def due(self) -> bool:
        now = self.clock.monotonic()
        if self.last is not None and now - self.last < self.seconds:
            return False
        self.last = now
        return True
