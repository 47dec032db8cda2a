"""work_off() on the memory driver: chains, batches with then, RateLimited, failures, fakes beside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from qctl_testjobs.shop import (
    LOG,
    Broken,
    GrowsBatch,
    NotifyCustomer,
    RecordShipment,
    ShipOrder,
    Throttled,
    UniqueShip,
    on_catch,
    on_chain_failed,
    on_then,
    send_report,
)

import qctl
from qctl import Bus
from qctl.runtime import Runtime
from qctl.testing import memory_config, memory_runtime, work_off


@pytest.fixture
def memory() -> Iterator[Runtime]:
    with memory_runtime(app=["qctl_testjobs"]) as runtime:
        yield runtime


def test_memory_config_keeps_everything_in_memory() -> None:
    config = memory_config(["qctl_testjobs"])
    assert config.connection().driver == "memory"
    assert (config.failed.driver, config.batching.driver, config.cache.driver) == ("memory",) * 3


def test_dispatch_then_work_off(memory: Runtime) -> None:
    ShipOrder(1).dispatch()
    qctl.dispatch(send_report, 7, fmt="csv")
    NotifyCustomer("ann").dispatch()  # its own queue, "mail"
    assert LOG == []
    assert work_off() == 3
    assert LOG == [("ship", 1), ("report", 7, "csv"), ("notify", "ann")]
    assert work_off() == 0


def test_a_queue_or_connection_alone(memory: Runtime) -> None:
    ShipOrder(1).dispatch()
    NotifyCustomer("ann").dispatch()
    assert work_off(queue="mail") == 1
    assert LOG == [("notify", "ann")]
    assert work_off(connection="memory", max_jobs=5) == 1


def test_max_jobs_bounds_the_run(memory: Runtime) -> None:
    qctl.Queue.bulk([ShipOrder(n) for n in range(5)])
    assert work_off(max_jobs=2) == 2
    assert memory.connections.get().size("default") == 3


def test_a_chain_runs_in_order(memory: Runtime) -> None:
    Bus.chain([ShipOrder(1), RecordShipment(1), NotifyCustomer("ann")]).dispatch()
    assert work_off() == 3
    assert LOG == [("ship", 1), ("record", 1), ("notify", "ann")]


def test_a_failing_link_stops_its_chain_and_runs_catch(memory: Runtime) -> None:
    Bus.chain([ShipOrder(1), Broken(1), RecordShipment(1)]).catch(on_chain_failed).dispatch()
    work_off()
    assert ("record", 1) not in LOG
    assert ("chain-catch", "ValueError") in LOG and ("failed", 1, "order 1 is broken") in LOG


def test_a_batch_runs_then(memory: Runtime) -> None:
    batch = Bus.batch([ShipOrder(1), [RecordShipment(1), NotifyCustomer("ann")], GrowsBatch(2)]) \
        .name("ship").then(on_then).dispatch()
    assert work_off() == 6
    assert LOG[-1] == ("then", "ship", 6)
    fresh = batch.fresh()
    assert fresh.finished() and fresh.pending_jobs == 0 and fresh.total_jobs == 6


def test_a_failing_batch_job_is_recorded_and_catch_runs(memory: Runtime) -> None:
    batch = Bus.batch([ShipOrder(1), Broken(2)]).name("b").catch(on_catch).dispatch()
    work_off()
    assert ("catch", "b", "ValueError") in LOG
    assert batch.fresh().cancelled() and batch.fresh().failed_jobs == 1
    [record] = memory.failed_store.all()
    assert record.connection == "memory" and "order 2 is broken" in record.exception


def test_a_rate_limited_job_is_released_not_run(memory: Runtime) -> None:
    Throttled(1).dispatch()
    Throttled(2).dispatch()
    assert work_off() == 2  # both reserved: one ran, one was released for about a minute
    assert LOG == [("throttled", 1)]
    assert memory.connections.get().size("default") == 1
    assert work_off() == 0  # not due yet


def test_a_failing_job_goes_to_the_failed_store(memory: Runtime) -> None:
    job_id = Broken(3).dispatch()
    work_off()
    record = memory.failed_store.find(str(job_id))
    assert record is not None and "ValueError: order 3 is broken" in record.exception
    assert LOG == [("failed", 3, "order 3 is broken")]
    assert memory.connections.get().size("default") == 0


def test_work_off_runs_the_memory_queue_and_what_a_fake_holds(memory: Runtime) -> None:
    with qctl.Queue.fake([NotifyCustomer]) as fake:
        ShipOrder(1).dispatch()
        NotifyCustomer("ann").dispatch()
        assert memory.connections.get().size("mail") == 0  # faked: recorded, not stored
        assert work_off() == 2
        fake.assert_pushed(NotifyCustomer, 1)
    assert LOG == [("ship", 1), ("notify", "ann")]


def test_a_faked_chain_runs_and_every_link_is_recorded(sqlite_runtime: Runtime) -> None:
    with qctl.Queue.fake() as fake:
        Bus.chain([ShipOrder(1), RecordShipment(1), NotifyCustomer("ann")]).dispatch()
        fake.assert_count(1)
        assert work_off() == 3
        assert LOG == [("ship", 1), ("record", 1), ("notify", "ann")]
        fake.assert_count(3)  # the next links were pushed as the chain went on
        fake.assert_pushed_on("mail", NotifyCustomer, lambda job: job.customer == "ann")
        assert work_off() == 0
    assert sqlite_runtime.connections.get().size("default") == 0  # nothing reached SQLite's queue


def test_a_faked_unique_job_gives_its_lock_back_when_it_ran(sqlite_runtime: Runtime) -> None:
    with qctl.Queue.fake() as fake:
        assert UniqueShip(1).dispatch() is not None
        assert UniqueShip(1).dispatch() is None
        assert work_off() == 1
        assert UniqueShip(1).dispatch() is not None
        fake.assert_pushed(UniqueShip, 2)


def test_a_faked_failing_job_reaches_the_real_failed_store(sqlite_runtime: Runtime) -> None:
    with qctl.Queue.fake():
        job_id = Broken(4).dispatch()
        work_off()
    assert sqlite_runtime.failed_store.find(str(job_id)) is not None
    assert LOG == [("failed", 4, "order 4 is broken")]


def test_a_non_memory_connection_needs_its_queues(memory: Runtime) -> None:
    with pytest.raises(ValueError, match="not a memory connection"):
        work_off(connection="null")
    assert work_off(connection="null", queue="default") == 0


def test_a_real_connection_is_worked_when_its_queues_are_named(sqlite_runtime: Runtime) -> None:
    ShipOrder(1).dispatch()
    assert work_off(connection="main", queue="default") == 1
    assert LOG == [("ship", 1)]
