"""Job counters for Prometheus only grow: rows that grow add their growth, new rows count whole,
rows that expire add nothing more (and take nothing back)."""

from __future__ import annotations

from qctl.monitoring.counting import JobCounter
from qctl.worker.metrics import Series, Totals, encode_row

SHIP: Series = ("main", "default", "Ship")


def row(processed: int, failed: int = 0, runtime_ms: float = 10.0) -> str:
    totals = Totals(processed=processed, failed=failed)
    for _ in range(processed + failed):
        totals.runtime.add(runtime_ms)
    return encode_row({SHIP: totals})


def test_a_counter_from_zero_adds_only_what_grew_after_its_first_read() -> None:
    counter = JobCounter(from_zero=True)
    assert counter.update({"h:1:a": row(7)})[SHIP].processed == 0  # learnt, not counted
    found = counter.update({"h:1:a": row(9, failed=1), "h:2:a": row(3)})
    assert (found[SHIP].processed, found[SHIP].failed, found[SHIP].runtime.count) == (5, 1, 6)
    assert counter.update({"h:2:a": row(4)})[SHIP].processed == 6  # hour 1 expired: nothing taken back


def test_a_counter_of_what_is_there_counts_every_row_at_once() -> None:
    counter = JobCounter(from_zero=False)
    assert counter.update({"h:1:a": row(7), "h:1:b": row(2)})[SHIP].processed == 9


def test_a_row_written_anew_smaller_counts_whole() -> None:
    counter = JobCounter(from_zero=True)
    counter.update({"h:1:a": row(7)})
    assert counter.update({"h:1:a": row(2)})[SHIP].processed == 2
    assert counter.update({"h:1:a": "damaged"})[SHIP].processed == 2  # an unreadable row adds nothing
