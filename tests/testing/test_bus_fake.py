"""Bus.fake(): dispatches, sync dispatches, chains and batches recorded; subsets; restore."""

from __future__ import annotations

import pytest
from qctl_testjobs.shop import (
    HoldsALambda,
    NotifyCustomer,
    RecordShipment,
    ShipOrder,
    on_then,
    send_report,
)

import qctl
from qctl import Bus
from qctl.errors import SerializationError
from qctl.runtime import Runtime


def fails(match: str) -> pytest.RaisesContext[AssertionError]:
    return pytest.raises(AssertionError, match=match)


def test_dispatch_assertions(sqlite_runtime: Runtime) -> None:
    with Bus.fake() as fake:
        fake.assert_nothing_dispatched()
        ShipOrder(1).dispatch()
        qctl.dispatch(ShipOrder(2).on_connection("sync"))
        fake.assert_dispatched(ShipOrder)
        fake.assert_dispatched(ShipOrder, lambda job: job.order_id == 2 and job.connection == "sync")
        fake.assert_dispatched_times(ShipOrder, 2)
        fake.assert_not_dispatched(RecordShipment)
        with fails("(?s)expected RecordShipment to be dispatched, but it was not\ndispatched \\(2\\):\n"
                   "  - ShipOrder\\(order_id=1, note=''\\) queue 'default' on 'main'"):
            fake.assert_dispatched(RecordShipment)
        with fails("expected ShipOrder to be dispatched 3 time"):
            fake.assert_dispatched_times(ShipOrder, 3)
        with fails("expected ShipOrder not to be dispatched"):
            fake.assert_not_dispatched(ShipOrder)
        with fails("expected nothing to be dispatched"):
            fake.assert_nothing_dispatched()
        assert [job.order_id for job in fake.dispatched(ShipOrder)] == [1, 2]
    assert sqlite_runtime.connections.get().size("default") == 0  # nothing queued, nothing run


def test_dispatch_sync_is_recorded_not_run(sqlite_runtime: Runtime) -> None:
    with Bus.fake() as fake:
        ShipOrder(1).dispatch_sync()
        qctl.dispatch_sync(send_report, 5)
        ShipOrder(2).dispatch()
        fake.assert_dispatched_sync(ShipOrder)
        fake.assert_dispatched_sync(ShipOrder, 1)
        fake.assert_dispatched_sync(send_report)
        fake.assert_not_dispatched_sync(RecordShipment)
        with fails("expected RecordShipment to be dispatched synchronously"):
            fake.assert_dispatched_sync(RecordShipment)
        with fails("ShipOrder\\(order_id=1, note=''\\) sync"):
            fake.assert_not_dispatched_sync(ShipOrder)
    from qctl_testjobs.shop import LOG

    assert LOG == []


def test_chains(sqlite_runtime: Runtime) -> None:
    with Bus.fake() as fake:
        Bus.chain([ShipOrder(1), RecordShipment(1), NotifyCustomer("ann")]).on_queue("flow").dispatch()
        NotifyCustomer("bob").dispatch()
        fake.assert_chained([ShipOrder, RecordShipment, NotifyCustomer])
        fake.assert_chained([ShipOrder(1), RecordShipment(1), NotifyCustomer("ann")])
        fake.assert_dispatched_with_chain(ShipOrder, [RecordShipment, NotifyCustomer])
        fake.assert_dispatched_without_chain(NotifyCustomer)
        [head] = fake.dispatched(ShipOrder)
        assert head.queue == "flow" and [type(j) for j in head.chained] == [RecordShipment, NotifyCustomer]
        with fails("with the chain \\[RecordShipment\\], but no such chain"):
            fake.assert_chained([ShipOrder, RecordShipment])
        with fails("no such chain"):
            fake.assert_chained([ShipOrder, RecordShipment(2), NotifyCustomer("ann")])
        with fails("expected ShipOrder to be dispatched with the chain \\[no chain\\]"):
            fake.assert_dispatched_without_chain(ShipOrder)


def test_batches(sqlite_runtime: Runtime) -> None:
    with Bus.fake() as fake:
        fake.assert_nothing_batched()
        batch = Bus.batch([ShipOrder(1), [RecordShipment(1), NotifyCustomer("ann")]]).name("ship").then(on_then).dispatch()
        assert batch.name == "ship" and batch.total_jobs == 3 and not batch.cancelled()
        fake.assert_batched(lambda b: b.name == "ship" and len(b.jobs) == 2)
        fake.assert_batched(lambda b: b.options["then"] == ["qctl_testjobs.shop:on_then"])
        fake.assert_batch_count(1)
        fake.assert_nothing_dispatched()
        with fails("(?s)expected a batch matching the predicate.*batch 'ship' \\[ShipOrder, RecordShipment\\]"):
            fake.assert_batched(lambda b: b.name == "other")
        with fails("expected 2 batch\\(es\\) to be dispatched, but 1 were"):
            fake.assert_batch_count(2)
        with fails("expected no batch to be dispatched"):
            fake.assert_nothing_batched()
    assert sqlite_runtime.batches.store.recent() == []


def test_payloads_are_still_checked(sqlite_runtime: Runtime) -> None:
    with Bus.fake() as fake:
        with pytest.raises(SerializationError):
            HoldsALambda().dispatch()
        with pytest.raises(SerializationError):
            Bus.chain([ShipOrder(1), HoldsALambda()]).dispatch()
        with pytest.raises(SerializationError):
            Bus.batch([HoldsALambda()]).dispatch()
        fake.assert_nothing_dispatched()
        fake.assert_nothing_batched()


def test_a_subset_goes_through(sqlite_runtime: Runtime) -> None:
    with Bus.fake([ShipOrder]) as fake:
        ShipOrder(1).dispatch()
        RecordShipment(1).dispatch()
        Bus.chain([RecordShipment(2), ShipOrder(2)]).dispatch()  # its head is not faked: queued for real
        fake.assert_dispatched(ShipOrder, 1)
        fake.assert_not_dispatched(RecordShipment)
    assert sqlite_runtime.connections.get().size("default") == 2


def test_except_and_restore(sqlite_runtime: Runtime) -> None:
    fake = Bus.fake().except_([RecordShipment])
    ShipOrder(1).dispatch()
    RecordShipment(1).dispatch()
    fake.restore()
    ShipOrder(2).dispatch()
    fake.assert_dispatched(ShipOrder, 1)
    assert sqlite_runtime.connections.get().size("default") == 2
    for target in (sqlite_runtime.dispatcher, sqlite_runtime.chains, sqlite_runtime.batches):
        assert not {"dispatch", "start", "envelope", "bulk"} & set(vars(target))


def test_bus_and_queue_fakes_together(sqlite_runtime: Runtime) -> None:
    with qctl.Queue.fake() as queue, Bus.fake([ShipOrder]) as bus:
        ShipOrder(1).dispatch()
        RecordShipment(1).dispatch()
        bus.assert_dispatched(ShipOrder)
        queue.assert_pushed(RecordShipment)
        queue.assert_not_pushed(ShipOrder)
    assert sqlite_runtime.connections.get().size("default") == 0


def test_stacked_fakes_end_in_reverse_order(sqlite_runtime: Runtime) -> None:
    queue = qctl.Queue.fake()
    bus = Bus.fake()
    with pytest.raises(RuntimeError, match="end fakes in the reverse order they began"):
        queue.restore()
    bus.restore()
    queue.restore()
    queue.restore()  # a second restore changes nothing
    ShipOrder(1).dispatch()
    assert sqlite_runtime.connections.get().size("default") == 1
