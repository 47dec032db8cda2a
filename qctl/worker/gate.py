"""How many of a pool's slots take jobs: as many as the jobs in flight need.

Threads pay off while jobs wait (on the network, a disk, a sleep); jobs that take microseconds
gain nothing from a second thread and lose to it, since every reply a thread waits for is a
hand-over of the GIL. So slots open as the jobs show they need them: the pool starts with one
open slot; whenever every open slot has been running its job for longer than OPEN_AFTER, the
main thread opens twice as many (1, 2, 4, … N: all of 32 within about 60 ms of a queue of slow
jobs); an open slot whose job was short closes again, from the top. A closed slot holds no job
and waits here; a stop (or a slot that ended) opens every slot for good, so each sees it and ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

OPEN_AFTER = 0.01
"""Seconds a job runs before it counts as one that another slot could work beside."""


class SlotGate:
    def __init__(self, slots: int, stopping: threading.Event) -> None:
        self.slots, self.stopping = slots, stopping
        self.open = 1
        """Slots 0 … open-1 take jobs; the others wait in `wait_turn`."""
        self.held_open = False
        """Set once the pool winds down (a stop, or a slot that ended): no slot closes again, or it
        would wait for ever with nobody left to open it."""
        self._changed = threading.Condition()

    @property
    def fully_open(self) -> bool:
        return self.open >= self.slots

    def is_open(self, number: int) -> bool:
        return number < self.open

    def wait_turn(self, number: int) -> None:
        """Return when slot `number` is open (or the pool stops)."""
        with self._changed:
            while number >= self.open and not self.stopping.is_set():
                self._changed.wait()

    def finished(self, number: int, seconds: float) -> None:
        """Slot `number`'s job ran `seconds`: a short one closes the slot if it is the top open one."""
        if number and seconds < OPEN_AFTER and number == self.open - 1 and not self.held_open:
            with self._changed:
                if number == self.open - 1 and not self.held_open:
                    self.open = number

    def widen(self, busy: Callable[[int], bool]) -> None:
        """(The main thread, every OPEN_AFTER at most.) Every open slot is busy with a job that has run
        longer than OPEN_AFTER: open twice as many."""
        opened = self.open
        if opened < self.slots and all(busy(number) for number in range(opened)):
            self.open_up(min(self.slots, opened * 2))

    def open_up(self, to: int | None = None) -> None:
        """Open slots 0 … `to`-1; with no `to`, every slot for good (a stop, or a slot that ended:
        every slot's loop must run to see it)."""
        with self._changed:
            self.open = max(self.open, self.slots if to is None else to)
            self.held_open = self.held_open or to is None
            self._changed.notify_all()
