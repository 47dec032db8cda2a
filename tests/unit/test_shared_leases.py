"""SharedLeases: a worker with several slots renews every job it holds together, one call per interval."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from qctl.drivers.base import ReservedJob
from qctl.errors import StoreUnavailableError
from qctl.worker.lease import SharedLeases
from tests.support.processes import wait_for


@dataclass(eq=False)
class Held:
    key: str
    queue: str = "default"
    renewed: int = 0

    def renew(self) -> bool:
        self.renewed += 1
        return True


class Store:
    def __init__(self, lost: set[str] = frozenset(), down: bool = False) -> None:  # type: ignore[assignment]
        self.calls: list[list[str]] = []
        self.lost, self.down = lost, down

    def renew_many(self, jobs: Sequence[ReservedJob]) -> list[bool]:
        self.calls.append([job.key for job in jobs])
        if self.down:
            raise StoreUnavailableError("redis at 127.0.0.1:1 is unreachable")
        return [job.key not in self.lost for job in jobs]


def holding(leases: SharedLeases, *keys: str) -> list[Held]:
    jobs = [Held(key) for key in keys]
    for number, job in enumerate(jobs):
        leases.slot(number).hold(job)  # type: ignore[arg-type]
    return jobs


def test_every_held_job_is_renewed_in_one_call() -> None:
    store = Store()
    leases = SharedLeases(1, store.renew_many)  # an interval of 0.5 s
    holding(leases, "a", "b", "c")
    leases.start()
    try:
        wait_for(lambda: len(store.calls) >= 2, 5, message="two renewal rounds")
    finally:
        leases.close()
    assert all(sorted(call) == ["a", "b", "c"] for call in store.calls)


def test_a_dropped_slot_is_no_longer_renewed() -> None:
    store = Store()
    leases = SharedLeases(1, store.renew_many)
    holding(leases, "a", "b")
    leases.slot(0).drop()
    leases.renew(list(leases.held.values()))
    assert store.calls == [["b"]]


def test_without_renew_many_each_job_is_renewed_on_its_own() -> None:
    leases = SharedLeases(1, None)
    jobs = holding(leases, "a", "b")
    leases.renew(list(leases.held.values()))
    assert [job.renewed for job in jobs] == [1, 1]


def test_a_lost_reservation_is_named(caplog: pytest.LogCaptureFixture) -> None:
    leases = SharedLeases(1, Store(lost={"b"}).renew_many)
    holding(leases, "a", "b")
    with caplog.at_level(logging.WARNING, logger="qctl.worker"):
        leases.renew(list(leases.held.values()))
    assert [record.getMessage() for record in caplog.records] == ["lost the reservation of job b on queue default"]


def test_a_store_outage_is_one_warning_and_the_next_round_tries_again(caplog: pytest.LogCaptureFixture) -> None:
    store = Store(down=True)
    leases = SharedLeases(1, store.renew_many)
    holding(leases, "a", "b")
    with caplog.at_level(logging.WARNING, logger="qctl.worker"):
        leases.renew(list(leases.held.values()))
        leases.renew(list(leases.held.values()))
    assert len(store.calls) == 2
    assert [record.getMessage() for record in caplog.records] == [
        "could not renew the reservations of 2 jobs: redis at 127.0.0.1:1 is unreachable"
    ] * 2


def test_no_retry_after_means_no_renewals() -> None:
    store = Store()
    leases = SharedLeases(None, store.renew_many)
    holding(leases, "a")
    leases.start()
    leases.close()
    assert leases.interval is None and store.calls == []
