"""Chains end to end: Bus.chain on every queue driver, worked off by a real worker loop in this process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import qctl_testjobs as jobs
from qctl_testjobs import flow

import qctl
from qctl import Bus
from qctl.errors import SerializationError
from tests.support.flows import current, drain, flow_ledger, lines, tags
from tests.support.workers import failed_records, queue_size

pytestmark = pytest.mark.usefixtures("worker_slots")  # in-process drains with one slot and with eight

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with flow_ledger(tmp_path, monkeypatch) as path:
        yield path


def test_only_the_head_is_queued_and_links_run_in_order(setup_factory, runtime_factory, kind, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory(kind))
    with current(runtime):
        head = Bus.chain([flow.Step("a"), flow.Step("b"), qctl.queued(jobs.write_file, str(ledger) + ".fn", "fn"),
                          flow.Step("c")]).dispatch()
    assert queue_size(runtime) == 1
    stored = json.loads(runtime.connections.get().pop(["default"]).raw)  # type: ignore[union-attr]
    assert stored["uuid"] == head and len(stored["data"]["chained"]) == 3
    runtime.connections.get().clear("default")
    with current(runtime):
        Bus.chain([flow.Step("a"), flow.Step("b"), qctl.queued(jobs.write_file, str(ledger) + ".fn", "fn"),
                   flow.Step("c")]).dispatch()
    assert drain(runtime) == 0
    assert tags(ledger) == ["a", "b", "c"]
    assert Path(str(ledger) + ".fn").read_text() == "fn"
    assert queue_size(runtime) == 0 and failed_records(runtime) == {}


def test_a_failed_link_stops_the_chain_and_runs_catch_once(setup_factory, runtime_factory, kind, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory(kind))
    with current(runtime):
        Bus.chain([flow.Step("a"), flow.OneTry("b", fail=True), flow.Step("c")]).catch(flow.chain_catch).dispatch()
    drain(runtime)
    assert tags(ledger) == ["a"] and tags(ledger, "start") == ["a", "b"]
    (catch,) = lines(ledger, "chain-catch")
    assert catch[1] == "RuntimeError" and catch[2] == "step_b_failed"
    (record,) = failed_records(runtime).values()
    assert record.error_line == "RuntimeError: step b failed" and queue_size(runtime) == 0


def test_delete_counts_as_success_and_a_release_does_not_advance(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        Bus.chain([flow.DeletesThenEnds("a"), flow.ReleasesOnce("b"), flow.Step("c")]).dispatch()
    drain(runtime, tries=3)
    assert tags(ledger, "released") == ["b"]
    assert tags(ledger) == ["a", "b", "c"] and queue_size(runtime) == 0


def test_prepend_and_append_inside_handle(setup_factory, runtime_factory, kind, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory(kind))
    with current(runtime):
        Bus.chain([flow.Prepends("p"), flow.Step("z")]).dispatch()
        flow.Prepends("alone").dispatch()  # not in a chain: prepending starts one
    drain(runtime)
    ends = tags(ledger)
    assert [t for t in ends if not t.startswith("alone")] == ["p", "p-pre2", "p-pre1", "z", "p-post"]
    assert [t for t in ends if t.startswith("alone")] == ["alone", "alone-pre2", "alone-pre1", "alone-post"]


def test_connection_and_queue_of_the_chain_and_of_a_link(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        Bus.chain([flow.Step("a"), flow.Step("b").on_queue("own"), flow.Step("c")]).on_queue("chain").dispatch()
    driver = runtime.connections.get()
    assert driver.size("chain") == 1 and driver.size("default") == 0
    drain(runtime, queues=("chain",))
    assert tags(ledger) == ["a"] and driver.size("own") == 1
    drain(runtime, queues=("own",))
    assert driver.size("chain") == 1
    drain(runtime, queues=("chain",))
    assert tags(ledger) == ["a", "b", "c"]


@pytest.mark.parametrize("batch_store", ["database", "redis"])
def test_a_batch_inside_a_chain_runs_before_the_next_link(setup_factory, runtime_factory, kind, batch_store, ledger) -> None:  # type: ignore[no-untyped-def]
    """The batch's last success (settled the long way after its delete was held back where the store
    guards deletes) queues the next link: a worker that found its queue empty looks once more."""
    runtime = runtime_factory(setup_factory(kind, batch_store=batch_store))
    with current(runtime):
        Bus.chain([
            flow.Step("a"),
            Bus.batch([flow.Step("b1"), flow.Step("b2")]).then(flow.on_then).name("middle"),
            flow.Step("c"),
        ]).dispatch()
    drain(runtime)
    ends = tags(ledger)
    assert ends[0] == "a" and sorted(ends[1:3]) == ["b1", "b2"] and ends[3:] == ["c"]
    (then,) = lines(ledger, "then")
    batch = runtime.batches.find(then[1])
    assert batch is not None and batch.name == "middle" and batch.finished() and batch.total_jobs == 2


def test_a_chain_may_start_with_a_batch_and_a_cancelled_batch_stops_it(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        batch_id = Bus.chain([Bus.batch([flow.Step("b1")]), flow.Step("after")]).dispatch()
        Bus.chain([Bus.batch([flow.OneTry("bad", fail=True)]), flow.Step("never")]).catch(flow.chain_catch).dispatch()
    drain(runtime)
    assert runtime.batches.find(batch_id) is not None
    assert "after" in tags(ledger) and "never" not in tags(ledger, "start")
    (catch,) = lines(ledger, "chain-catch")
    assert catch[1] == "RuntimeError"


def test_bad_chains_are_refused_at_dispatch(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        with pytest.raises(SerializationError, match="lambdas and nested functions"):
            Bus.chain([flow.Step("a")]).catch(lambda exc: None)
        with pytest.raises(SerializationError, match="at least one job"):
            Bus.chain([]).dispatch()
        with pytest.raises(SerializationError, match="app packages"):
            Bus.chain([flow.Step("a"), jobs.Ok(1)]).catch(_outside_app).dispatch()
        with pytest.raises(SerializationError, match="cannot queue a value"):
            Bus.chain([flow.Step("a"), jobs.Ok(lambda: 1)]).dispatch()  # type: ignore[arg-type]
    assert queue_size(runtime) == 0


def _outside_app(exc: BaseException) -> None:
    """A module-level function of the tests package, which is not in `app`."""
