"""Queue.fake(): every assertion passing and failing, subsets going through to SQLite, restore."""

from __future__ import annotations

import pytest
from qctl_testjobs.shop import (
    HoldsALambda,
    NotifyCustomer,
    RecordShipment,
    ShipOrder,
    UniqueShip,
    other_function,
    send_report,
)

import qctl
from qctl import Bus, Queue
from qctl.errors import SerializationError
from qctl.runtime import Runtime


def fails(match: str) -> pytest.RaisesContext[AssertionError]:
    return pytest.raises(AssertionError, match=match)


def test_assert_pushed_counts_and_predicates(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        ShipOrder(7, note="gift").dispatch()
        ShipOrder(8).dispatch()
        fake.assert_pushed(ShipOrder)
        fake.assert_pushed(ShipOrder, 2)
        fake.assert_pushed(ShipOrder, lambda job: job.order_id == 7 and job.note == "gift")
        fake.assert_pushed(lambda job: job.order_id == 8)
        fake.assert_count(2)
        fake.assert_not_pushed(RecordShipment)
        fake.assert_not_pushed(ShipOrder, lambda job: job.order_id == 9)
        with fails(r"expected ShipOrder to be pushed 3 time\(s\), but it was pushed 2 time\(s\)"):
            fake.assert_pushed(ShipOrder, 3)
        with fails("ShipOrder\\(order_id=7, note='gift'\\) queue 'default' on 'main'"):
            fake.assert_pushed(RecordShipment)
        with fails("expected ShipOrder to be pushed matching the predicate"):
            fake.assert_pushed(ShipOrder, lambda job: job.order_id == 99)
        with fails("expected ShipOrder not to be pushed, but it was 2 time"):
            fake.assert_not_pushed(ShipOrder)
        with fails("expected 5 job\\(s\\) to be pushed, but 2 were"):
            fake.assert_count(5)
        with fails("expected nothing to be pushed\npushed \\(2\\):\n  - ShipOrder"):
            fake.assert_nothing_pushed()


def test_nothing_pushed_message_says_so(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        fake.assert_nothing_pushed()
        with fails("expected ShipOrder to be pushed, but it was not\nnothing was pushed"):
            fake.assert_pushed(ShipOrder)


def test_pushed_shows_queue_connection_and_delay(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        job = ShipOrder(1)
        job_id = job.on_queue("shipping").delay(60).dispatch()
        NotifyCustomer("ann").dispatch()
        fake.assert_pushed_on("shipping", ShipOrder)
        fake.assert_pushed_on("mail", NotifyCustomer, lambda job: job.customer == "ann")
        with fails("expected NotifyCustomer to be pushed on queue 'default'"):
            fake.assert_pushed_on("default", NotifyCustomer)
        [seen] = fake.pushed(ShipOrder)
        assert (seen.queue, seen.connection, seen.delay, seen.job_uuid) == ("shipping", "main", 60.0, job_id)
        assert seen.order_id == 1 and seen is not job
        assert job.queue is None  # the caller's instance is left as it was
        assert len(fake.pushed()) == 2


def test_functions_and_bulk(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        qctl.dispatch(send_report, 42, fmt="csv")
        Queue.bulk([ShipOrder(1), ShipOrder(2)])
        fake.assert_function_pushed(send_report)
        fake.assert_function_pushed(send_report, 1)
        fake.assert_pushed(send_report, lambda job: job.arguments == ((42,), {"fmt": "csv"}))
        fake.assert_pushed(ShipOrder, 2)
        with fails("(?s)expected other_function\\(\\) to be pushed.*send_report\\(42, fmt='csv'\\)"):
            fake.assert_function_pushed(other_function)


def test_chains(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        Bus.chain([ShipOrder(1), RecordShipment(1), qctl.queued(send_report, 1)]).dispatch()
        ShipOrder(2).dispatch()
        fake.assert_count(1 + 1)  # only a chain's head is queued
        fake.assert_pushed_with_chain(ShipOrder, [RecordShipment, send_report])
        fake.assert_pushed_with_chain(ShipOrder, [RecordShipment(1), qctl.queued(send_report, 1)])
        fake.assert_pushed_without_chain(ShipOrder)  # ShipOrder(2)
        with fails("with the chain \\[RecordShipment\\], but no such chain"):
            fake.assert_pushed_with_chain(ShipOrder, [RecordShipment])
        with fails("no such chain"):
            fake.assert_pushed_with_chain(ShipOrder, [RecordShipment(2), send_report])
        with fails("RecordShipment to be pushed with a chain, but it was not pushed"):
            fake.assert_pushed_without_chain(RecordShipment)


def test_a_job_that_cannot_be_queued_fails_as_in_production(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        with pytest.raises(SerializationError, match="HoldsALambda.callback"):
            HoldsALambda().dispatch()
        fake.assert_nothing_pushed()


def test_unique_jobs_stay_unique_in_memory(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        assert UniqueShip(1).dispatch() is not None
        assert UniqueShip(1).dispatch() is None
        fake.assert_pushed(UniqueShip, 1)
    assert UniqueShip(1).dispatch() is not None  # the fake's lock never reached the real cache
    assert sqlite_runtime.connections.get().size("default") == 1


def test_a_subset_is_faked_the_rest_is_pushed_for_real(sqlite_runtime: Runtime) -> None:
    driver = sqlite_runtime.connections.get()
    with Queue.fake([ShipOrder, send_report]) as fake:
        ShipOrder(1).dispatch()
        RecordShipment(1).dispatch()
        qctl.dispatch(send_report, 1)
        qctl.dispatch(other_function, 1)
        fake.assert_pushed(ShipOrder)
        fake.assert_function_pushed(send_report)
        fake.assert_not_pushed(RecordShipment)
        fake.assert_count(2)
    assert driver.size("default") == 2  # RecordShipment and other_function, in SQLite
    raw = [driver.pop(["default"]) for _ in range(2)]
    names = sorted(b'RecordShipment' in r.raw for r in raw if r is not None)
    assert names == [False, True]


def test_except_fakes_everything_but(sqlite_runtime: Runtime) -> None:
    driver = sqlite_runtime.connections.get()
    with Queue.fake().except_([RecordShipment]) as fake:
        ShipOrder(1).dispatch()
        RecordShipment(1).dispatch()
        fake.assert_pushed(ShipOrder)
        fake.assert_not_pushed(RecordShipment)
    assert driver.size("default") == 1


def test_restore_puts_the_real_queue_back(sqlite_runtime: Runtime) -> None:
    fake = Queue.fake()
    ShipOrder(1).dispatch()
    fake.restore()
    ShipOrder(2).dispatch()
    fake.assert_pushed(ShipOrder, 1)
    assert sqlite_runtime.connections.get().size("default") == 1
    assert "get" not in vars(sqlite_runtime.connections) and "envelope" not in vars(sqlite_runtime.dispatcher)


def test_the_fake_ends_even_when_the_block_raises(sqlite_runtime: Runtime) -> None:
    with pytest.raises(RuntimeError), Queue.fake():
        raise RuntimeError("boom")
    ShipOrder(1).dispatch()
    assert sqlite_runtime.connections.get().size("default") == 1


def test_a_long_listing_is_cut(sqlite_runtime: Runtime) -> None:
    with Queue.fake() as fake:
        Queue.bulk([ShipOrder(n) for n in range(25)])
        with fails("… and 5 more"):
            fake.assert_nothing_pushed()
