"""One contract, every backend: what each driver must do, checked against the real servers."""

from __future__ import annotations

import json
import time
from typing import cast

import pytest

from qctl.drivers.base import (
    Driver,
    FoldingDriver,
    PushesInTransaction,
    PushesWithDelete,
    RenewsMany,
    ReservedJob,
)
from tests.support.processes import wait_for

KINDS = ["sqlite", "postgresql", "mariadb", "redis", "memory"]
SQL_KINDS = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_driver(setup_factory, runtime_factory, kind: str, retry_after: int = 90) -> Driver:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=retry_after)
    return runtime_factory(setup).connections.get()


@pytest.fixture
def driver(setup_factory, runtime_factory, kind: str) -> Driver:  # type: ignore[no-untyped-def]
    return make_driver(setup_factory, runtime_factory, kind)


def payload(n: int, **extra: object) -> str:
    return json.dumps({"uuid": f"job-{n}", "n": n, **extra}, separators=(",", ":"))


def number(job: ReservedJob | None) -> int:
    assert job is not None
    return int(json.loads(job.raw)["n"])


def pop_within(driver: Driver, queues: list[str], seconds: float) -> ReservedJob:
    found: list[ReservedJob] = []

    def popped() -> bool:
        job = driver.pop(queues)
        if job is not None:
            found.append(job)
        return bool(found)

    wait_for(popped, seconds, interval=0.1, message=f"a job on {queues}")
    return found[0]


def test_push_pop_delete(driver: Driver) -> None:
    driver.push(payload(1), "default")
    job = driver.pop(["default"])
    assert number(job) == 1 and job is not None
    assert job.attempts == 1 and job.queue == "default" and not job.reclaimed
    assert driver.pop(["default"]) is None
    assert driver.size("default") == 1  # reserved jobs count, as in Laravel
    assert job.delete() is True
    assert driver.size("default") == 0


def test_fifo_within_a_queue(driver: Driver) -> None:
    for n in range(5):
        driver.push(payload(n), "default")
    assert [number(driver.pop(["default"])) for _ in range(5)] == [0, 1, 2, 3, 4]


def test_priority_order_across_queues(driver: Driver) -> None:
    driver.push(payload(1), "low")
    driver.push(payload(2), "high")
    driver.push(payload(3), "low")
    driver.push(payload(4), "high")
    order = [number(driver.pop(["high", "low"])) for _ in range(4)]
    assert order == [2, 4, 1, 3]
    assert driver.pop(["high", "low"]) is None


def test_bulk_pushes_everything(driver: Driver) -> None:
    driver.bulk([(payload(n), "bulk" if n % 2 else "other", 0) for n in range(10)])
    assert driver.size("bulk") == 5 and driver.size("other") == 5


def test_delayed_job_waits(driver: Driver) -> None:
    driver.push(payload(1), "default", delay=1.5)
    driver.push(payload(2), "default")
    started = time.monotonic()
    assert number(driver.pop(["default"])) == 2
    assert driver.pop(["default"]) is None
    assert driver.size("default") == 2
    job = pop_within(driver, ["default"], 5)
    assert number(job) == 1
    assert time.monotonic() - started >= 1.4  # never early


def test_release_puts_the_job_back_with_its_attempts(driver: Driver) -> None:
    driver.push(payload(1), "default")
    first = driver.pop(["default"])
    assert first is not None and first.release(0) is True
    second = driver.pop(["default"])
    assert second is not None and number(second) == 1
    assert second.attempts == 2 and not second.reclaimed
    assert second.release(1.5) is True
    assert driver.pop(["default"]) is None
    third = pop_within(driver, ["default"], 5)
    assert third.attempts == 3


def test_released_job_goes_behind_waiting_jobs(driver: Driver) -> None:
    driver.push(payload(1), "default")
    driver.push(payload(2), "default")
    first = driver.pop(["default"])
    assert first is not None and first.release(0)
    assert [number(driver.pop(["default"])) for _ in range(2)] == [2, 1]


def test_clear_removes_ready_delayed_and_reserved(driver: Driver) -> None:
    driver.push(payload(1), "default")
    driver.push(payload(2), "default", delay=60)
    driver.push(payload(3), "default")
    driver.push(payload(4), "other")
    assert driver.pop(["default"]) is not None
    assert driver.size("default") == 3
    assert driver.clear("default") == 3
    assert driver.size("default") == 0 and driver.size("other") == 1


def test_payload_bytes_survive_releases_unchanged(driver: Driver) -> None:
    tricky = json.dumps(
        {"uuid": "x", "n": 1, "empty": [], "obj": {}, "big": 2**63 + 1, "f": 0.1, "url": "a/b", "u": "žluť 🐍"},
        separators=(",", ":"),
    )
    driver.push(tricky, "default")
    for attempt in range(1, 5):
        job = driver.pop(["default"])
        assert job is not None and job.attempts == attempt
        assert job.raw == tricky.encode()
        assert job.release(0)


def one_reserved(setup_factory, runtime_factory, kind: str, retry_after: int) -> tuple[Driver, ReservedJob]:  # type: ignore[no-untyped-def]
    """A driver whose leases last `retry_after` seconds, and the one job it just reserved."""
    driver = make_driver(setup_factory, runtime_factory, kind, retry_after=retry_after)
    driver.push(payload(1), "default")
    job = driver.pop(["default"])
    assert job is not None
    return driver, job


def test_expired_reservation_is_reclaimed(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver, first = one_reserved(setup_factory, runtime_factory, kind, 1)
    second = pop_within(driver, ["default"], 6)
    assert number(second) == 1
    assert second.attempts == 2 and second.reclaimed


def test_stale_holder_cannot_delete_or_release(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver, stale = one_reserved(setup_factory, runtime_factory, kind, 1)
    current = pop_within(driver, ["default"], 6)
    assert stale.delete() is False
    assert stale.release(0) is False
    assert stale.renew() is False
    assert driver.size("default") == 1
    assert driver.pop(["default"]) is None  # the stale release did not duplicate it
    assert current.delete() is True
    assert driver.size("default") == 0


def test_renewed_lease_is_not_handed_out(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver, job = one_reserved(setup_factory, runtime_factory, kind, 2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.5)
        assert job.renew() is True
        assert driver.pop(["default"]) is None
    assert job.delete() is True


def folding(driver: Driver) -> FoldingDriver:
    assert hasattr(driver, "pop_after"), f"{type(driver).__name__} cannot delete a finished job with its next reserve"
    return cast(FoldingDriver, driver)


def test_pop_after_deletes_the_finished_job_with_the_next_reserve(driver: Driver) -> None:
    driver.bulk([(payload(1), "default", 0), (payload(2), "default", 0)])
    first = driver.pop(["default"])
    second = folding(driver).pop_after(first, ["low", "default"])
    assert number(first) == 1 and number(second) == 2
    assert driver.size("default") == 1  # only the second, still reserved
    assert folding(driver).pop_after(second, ["default"]) is None  # nothing left to reserve: deleted all the same
    assert driver.size("default") == 0


def test_pop_after_never_hands_back_the_job_it_deletes(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    """The finished job's lease has lapsed, so it looks available; nobody took it, so its delete holds."""
    driver, finished = one_reserved(setup_factory, runtime_factory, kind, 1)
    time.sleep(2.1)
    assert folding(driver).pop_after(finished, ["default"]) is None
    assert driver.size("default") == 0


def test_pop_after_leaves_a_job_another_worker_took_over(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver, stale = one_reserved(setup_factory, runtime_factory, kind, 1)
    current = pop_within(driver, ["default"], 6)  # reclaimed after the lease lapsed
    assert folding(driver).pop_after(stale, ["default"]) is None
    assert driver.size("default") == 1  # the stale delete matched nothing
    assert current.delete() is True


def chaining(job: ReservedJob | None) -> PushesWithDelete:
    assert isinstance(job, PushesWithDelete), f"{type(job).__name__} cannot push with its delete"
    return job


def test_delete_and_push_replaces_the_job_with_the_pushed_ones(driver: Driver) -> None:
    driver.push(payload(1), "default")
    job = driver.pop(["default"])
    pushed = [(payload(2), "default", 0.0), (payload(3), "default", 0.2), (payload(4), "default", 0.0)]
    assert chaining(job).delete_and_push(pushed) is True
    assert driver.size("default") == 3  # job 1 is gone
    assert [number(driver.pop(["default"])) for _ in range(2)] == [2, 4]
    assert driver.pop(["default"]) is None  # the delayed one is not due yet
    assert number(pop_within(driver, ["default"], 3)) == 3


def test_delete_and_push_onto_other_queues(driver: Driver) -> None:
    driver.push(payload(1), "default")
    job = driver.pop(["default"])
    assert chaining(job).delete_and_push([(payload(2), "other", 0), (payload(3), "third", 60)]) is True
    assert driver.size("default") == 0 and driver.size("other") == 1 and driver.size("third") == 1
    nxt = driver.pop(["default", "other"])
    assert number(nxt) == 2 and nxt is not None and nxt.attempts == 1
    assert chaining(nxt).delete_and_push([]) is True  # nothing to push: a plain delete
    assert driver.size("other") == 0


def test_stale_holder_cannot_delete_and_push(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver, stale = one_reserved(setup_factory, runtime_factory, kind, 1)
    current = pop_within(driver, ["default"], 6)  # reclaimed after the lease lapsed
    assert chaining(stale).delete_and_push([(payload(2), "default", 0), (payload(3), "other", 0)]) is False
    assert driver.size("default") == 1 and driver.size("other") == 0  # nothing pushed, nothing deleted
    assert current.delete() is True


def in_transaction(driver: Driver) -> PushesInTransaction:
    assert isinstance(driver, PushesInTransaction), f"{type(driver).__name__} cannot push in a transaction"
    return driver


class RolledBack(Exception):
    pass


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_push_in_follows_the_callers_transaction(driver: Driver) -> None:
    sql = in_transaction(driver)
    with pytest.raises(RolledBack), sql.engine.begin() as conn:
        sql.push_in(conn, [(payload(1), "default", 0), (payload(2), "default", 60)])
        raise RolledBack
    assert driver.size("default") == 0
    with sql.engine.begin() as conn:
        sql.push_in(conn, [(payload(3), "default", 0), (payload(4), "default", 60), (payload(5), "default", 0)])
    assert driver.size("default") == 3
    assert [number(driver.pop(["default"])) for _ in range(2)] == [3, 5]
    assert driver.pop(["default"]) is None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb", "redis"])
def test_renew_many_renews_every_held_job_in_one_call_and_fences_a_stale_one(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, kind, retry_after=1)
    assert isinstance(driver, RenewsMany), f"{type(driver).__name__} renews one job per round trip"
    driver.push(payload(0), "default")
    stale = driver.pop(["default"])
    assert stale is not None
    current = pop_within(driver, ["default"], 6)  # the lapsed first reservation, taken again
    driver.bulk([(payload(n), "default", 0) for n in range(1, 4)])
    held = [current] + [job for job in (driver.pop(["default"]) for _ in range(3)) if job is not None]
    assert len(held) == 4 and number(current) == number(stale)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # three lease lengths: every job kept only by the renewals
        time.sleep(0.3)
        assert driver.renew_many([stale, *held]) == [False, True, True, True, True]
        assert driver.pop(["default"]) is None
    assert all(job.delete() for job in held)
    assert driver.size("default") == 0
