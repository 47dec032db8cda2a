"""SlotGate: a pool opens slots as its jobs need them, and a stop opens every one."""

from __future__ import annotations

import threading

from qctl.worker.gate import OPEN_AFTER, SlotGate
from tests.support.processes import wait_for


def gate(slots: int = 8) -> SlotGate:
    return SlotGate(slots, threading.Event())


def test_one_slot_is_open_at_first_and_busy_slots_double_it_up_to_all() -> None:
    g = gate(8)
    assert [g.is_open(n) for n in range(3)] == [True, False, False]
    opened = []
    for _ in range(4):
        g.widen(lambda number: True)
        opened.append(g.open)
    assert opened == [2, 4, 8, 8] and g.fully_open


def test_a_slot_that_is_not_busy_keeps_the_gate_where_it_is() -> None:
    g = gate(8)
    g.open_up(4)
    g.widen(lambda number: number != 2)
    assert g.open == 4


def test_a_short_job_closes_the_top_open_slot_only() -> None:
    g = gate(8)
    g.open_up(4)
    g.finished(1, OPEN_AFTER / 10)  # not the top one
    g.finished(3, OPEN_AFTER * 2)  # the top one, but a long job
    assert g.open == 4
    g.finished(3, OPEN_AFTER / 10)
    g.finished(2, OPEN_AFTER / 10)
    assert g.open == 2
    g.finished(0, 0.0)  # slot 0 never closes
    g.finished(1, 0.0)
    assert g.open == 1
    g.finished(0, 0.0)
    assert g.open == 1


def test_a_closed_slot_waits_until_opened_or_stopped() -> None:
    stopping = threading.Event()
    g = SlotGate(4, stopping)
    woke: list[int] = []
    threads = [threading.Thread(target=lambda n=n: (g.wait_turn(n), woke.append(n))) for n in (1, 3)]
    for thread in threads:
        thread.start()
    g.open_up(2)
    wait_for(lambda: woke == [1], 5, message="slot 1 let through")
    assert threads[1].is_alive()  # slot 3 is still closed
    stopping.set()
    g.open_up(0)  # a wake-up that opens nothing more: slot 3 leaves because the pool stops
    wait_for(lambda: sorted(woke) == [1, 3], 5, message="slot 3 released by the stop")
    for thread in threads:
        thread.join(5)


def test_once_opened_for_good_no_slot_closes_again() -> None:
    """A slot that ended (an empty queue with --stop-when-empty) opens every slot for good: a slot
    closing after that would wait with nobody left to open it."""
    g = gate(4)
    g.open_up()
    g.finished(3, 0.0)
    assert g.open == 4 and g.held_open
    g.open_up(2)  # a widen after that changes nothing
    assert g.open == 4
