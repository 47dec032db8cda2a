"""Sizes per state on every driver (`InspectsQueues`): after pushes, delays and reservations, read
from counts alone, and never creating the table or keys they read."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import inspect

from qctl.drivers.base import Driver, InspectsQueues, QueueSizes
from tests.drivers.test_conformance import KINDS, SQL_KINDS, make_driver, payload
from tests.support.configs import redis_prefix
from tests.support.processes import wait_for
from tests.support.services import url_for


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_sizes_per_state_after_pushes_delays_and_reservations(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, kind)
    assert isinstance(driver, InspectsQueues)
    assert driver.sizes("default") == QueueSizes("default")
    driver.bulk([(payload(n, pushedAt="1.0"), "default", 0) for n in range(5)])
    driver.push(payload(10), "default", delay=600)
    driver.push(payload(11), "default", delay=900)
    driver.push(payload(20), "other")
    held = [driver.pop(["default"]), driver.pop(["default"])]
    assert all(job is not None for job in held)

    sizes = driver.sizes("default")
    assert (sizes.ready, sizes.delayed, sizes.reserved) == (3, 2, 2)
    assert sizes.size == driver.size("default") == 7
    assert sizes.oldest_wait is not None and sizes.oldest_wait >= 0
    assert driver.sizes("other").ready == 1 and driver.sizes("nothing") == QueueSizes("nothing")

    for job in held:
        assert job is not None and job.delete()
    assert (driver.sizes("default").ready, driver.sizes("default").reserved) == (3, 0)


def test_a_released_job_is_delayed_again(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, kind)
    driver.push(payload(1), "default")
    job = driver.pop(["default"])
    assert job is not None and job.release(300)
    sizes = driver.sizes("default")
    assert (sizes.ready, sizes.delayed, sizes.reserved, sizes.oldest_wait) == (0, 1, 0, None)


def test_a_lapsed_reservation_counts_as_ready(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, kind, retry_after=1)
    driver.push(payload(1), "default")
    assert driver.pop(["default"]) is not None
    assert driver.sizes("default").reserved == 1
    wait_for(lambda: driver.sizes("default").ready == 1, 5, interval=0.1, message="the lease to lapse")
    assert driver.sizes("default").reserved == 0


def test_the_oldest_wait_counts_from_when_the_job_became_ready(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, kind)
    driver.push(payload(1, pushedAt=f"{time.time() - 120:.4f}"), "default")
    wait = driver.sizes("default").oldest_wait
    assert wait is not None
    if kind == "redis":  # the ready head's pushedAt, as Laravel's Redis queue reads it
        assert 119 <= wait <= 130
    else:  # available_at of the oldest ready row
        assert 0 <= wait <= 5


def test_queues_with_jobs(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    driver = make_driver(setup_factory, runtime_factory, kind)
    assert driver.queues_with_jobs(10) == []  # type: ignore[attr-defined]
    for queue in ("mail", "default", "zeta", "mail"):
        driver.push(payload(1), queue)
    found = driver.queues_with_jobs(10)  # type: ignore[attr-defined]
    if kind == "redis":
        assert found == []  # no cheap way: status takes the default queue and the workers' queues
    else:
        assert found == ["default", "mail", "zeta"]
        assert driver.queues_with_jobs(2) == ["default", "mail"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", [*SQL_KINDS, "redis"])
def test_reading_sizes_creates_no_table_and_no_key(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    driver: Driver = runtime_factory(setup).connections.get()
    assert driver.sizes("default") == QueueSizes("default")  # type: ignore[attr-defined]
    assert driver.queues_with_jobs(10) == []  # type: ignore[attr-defined]
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(url_for("redis", setup.directory))
        assert list(client.scan_iter(match=f"{redis_prefix(setup)}*")) == []
        client.close()
        return
    if kind == "sqlite":
        assert not (setup.directory / "qctl.sqlite").exists()
        return
    engine = driver.engine  # type: ignore[attr-defined]
    assert not inspect(engine).has_table(setup.table("jobs"))


def test_sizes_read_no_payload(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    """A payload that is not JSON at all is counted like any other."""
    driver = make_driver(setup_factory, runtime_factory, "sqlite")
    driver.push("\x00not json", "default")
    driver.push(json.dumps({"x": 1}), "default")
    assert driver.sizes("default").ready == 2  # type: ignore[attr-defined]


def test_clear_returning_counts_what_it_deleted_per_state(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    from qctl.drivers.base import Cleared, ClearsReturning

    driver = make_driver(setup_factory, runtime_factory, kind)
    assert isinstance(driver, ClearsReturning)
    driver.bulk([(payload(n, unique="MARK" if n == 0 else ""), "default", 0) for n in range(4)])
    driver.push(payload(10), "default", delay=600)
    driver.push(payload(20), "other")
    assert driver.pop(["default"]) is not None
    cleared = driver.clear_returning("default", b"MARK")
    assert (cleared.ready, cleared.delayed, cleared.reserved, cleared.total) == (3, 1, 1, 5)
    assert len(cleared.unique) == 1 and b"MARK" in cleared.unique[0]
    assert driver.size("default") == 0 and driver.size("other") == 1
    assert driver.clear_returning("default", b"MARK") == Cleared(0, 0, 0, [])
