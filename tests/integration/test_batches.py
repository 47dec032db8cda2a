"""Batches end to end on every queue driver × both batch stores, worked off by a worker loop in this process."""

from __future__ import annotations

from pathlib import Path

import pytest
import qctl_testjobs as jobs
from qctl_testjobs import flow

from qctl import Bus
from qctl.errors import SerializationError
from tests.support.flows import current, drain, flow_ledger, lines, tags
from tests.support.processes import run_qctl
from tests.support.workers import failed_records, queue_size

pytestmark = pytest.mark.usefixtures("worker_slots")  # in-process drains with one slot and with eight

COMBOS = [(q, s) for q in ("sqlite", "postgresql", "mariadb", "redis") for s in ("database", "redis")]


@pytest.fixture(params=COMBOS, ids=[f"{q}-{s}" for q, s in COMBOS])
def setup(request: pytest.FixtureRequest, setup_factory):  # type: ignore[no-untyped-def]
    queue_kind, store = request.param
    return setup_factory(queue_kind, batch_store=store)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with flow_ledger(tmp_path, monkeypatch) as path:
        yield path


def callbacks(pending):  # type: ignore[no-untyped-def]
    return (pending.before(flow.on_before).progress(flow.on_progress).then(flow.on_then)
            .catch(flow.on_catch).finally_(flow.on_finally))


def test_a_batch_with_a_chain_inside_runs_every_callback_once(setup, runtime_factory, ledger, worker_slots) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup)
    with current(runtime):
        pending = callbacks(Bus.batch([flow.Step("a"), flow.Step("b"), [flow.Step("c1"), flow.Step("c2")]]))
        batch = pending.name("Import").dispatch()
    assert (batch.total_jobs, batch.pending_jobs, batch.name) == (4, 4, "Import")
    assert queue_size(runtime) == 3  # the chain's second link is not queued yet
    assert [row[2] for row in lines(ledger, "before")] == ["0"]  # before the jobs were added
    drain(runtime)
    assert sorted(tags(ledger)) == ["a", "b", "c1", "c2"]
    assert tags(ledger).index("c1") < tags(ledger).index("c2")
    assert [row[1:4] for row in lines(ledger, "then")] == [[batch.id, "0", "0"]]
    assert len(lines(ledger, "finally")) == 1 and lines(ledger, "catch") == []
    progress = sorted(int(row[2]) for row in lines(ledger, "progress"))
    if worker_slots == 1:
        assert progress == [1, 2, 3, 4]
    else:  # each callback reads the batch as it is when it runs: two jobs that end together may see one count
        assert len(progress) == 4 and progress[-1] == 4 and set(progress) <= {1, 2, 3, 4}
    done = batch.fresh()
    assert done.finished() and not done.cancelled() and done.pending_jobs == 0 and done.progress() == 100
    with current(runtime):
        found = Bus.find_batch(batch.id)
    assert found is not None and found.to_dict()["processed_jobs"] == 4


def test_first_failure_cancels_and_cancelled_jobs_skip(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    """B-03: without allow_failures the first failure cancels; catch runs once; later jobs skip handle()."""
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        items = [flow.OneTry("bad", fail=True), *[flow.SkipsWhenCancelled(f"s{n}") for n in range(10)],
                 flow.OneTry("bad2", fail=True)]
        batch = callbacks(Bus.batch(items)).dispatch()
    drain(runtime)
    done = batch.fresh()
    assert done.cancelled() and done.finished() and done.failed_jobs == 2
    assert len(lines(ledger, "catch")) == 1 and lines(ledger, "then") == []
    assert len(lines(ledger, "finally")) == 1  # every job has run once (two failed, ten skipped)
    assert tags(ledger, "start") == ["bad", "bad2"]  # bad2 has no SkipIfBatchCancelled: it still runs
    assert sorted(done.failed_job_ids) == sorted(failed_records(runtime))


def test_allow_failures_keeps_going_and_then_waits_for_a_retry(setup_factory, runtime_factory, ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    flag = tmp_path / "fixed"
    with current(runtime):
        batch = callbacks(Bus.batch([flow.FlagStep("flaky", str(flag)), flow.Step("ok")])).allow_failures().dispatch()
    drain(runtime)
    failed = batch.fresh()
    assert not failed.cancelled() and failed.failed_jobs == 1 and failed.pending_jobs == 1
    assert len(lines(ledger, "catch")) == 1 and len(lines(ledger, "finally")) == 1 and lines(ledger, "then") == []
    assert len(lines(ledger, "progress")) == 2  # with allow_failures the failure reports progress too
    flag.write_text("")
    done = run_qctl(["retry-batch", batch.id], setup.directory)
    assert done.returncode == 0, done.stderr
    assert failed_records(runtime) == {}
    drain(runtime)
    fixed = batch.fresh()
    assert fixed.pending_jobs == 0 and fixed.failed_job_ids == [] and fixed.finished()
    assert len(lines(ledger, "then")) == 1 and len(lines(ledger, "finally")) == 1  # finally is not run twice


def test_jobs_added_from_inside_the_batch_are_counted(setup, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup)
    with current(runtime):
        batch = Bus.batch([flow.Adder(5, "x"), flow.Adder(3, "y")]).then(flow.on_then).dispatch()
    drain(runtime)
    done = batch.fresh()
    assert done.total_jobs == 10 and done.pending_jobs == 0 and len(lines(ledger, "then")) == 1
    assert sorted(tags(ledger)) == sorted([f"x-{n}" for n in range(5)] + [f"y-{n}" for n in range(3)])


def test_a_batch_of_zero_jobs_finishes_at_once(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        batch = callbacks(Bus.batch([])).dispatch()
    assert batch.finished() and batch.total_jobs == 0 and batch.progress() == 0
    assert len(lines(ledger, "then")) == 1 and len(lines(ledger, "finally")) == 1 and len(lines(ledger, "before")) == 1


def test_a_failed_link_of_a_chain_in_a_batch_skips_the_rest_of_that_chain(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        batch = callbacks(Bus.batch([[flow.OneTry("c1", fail=True), flow.Step("c2"), flow.Step("c3")], flow.Step("d")]))
        batch = batch.allow_failures().dispatch()
    drain(runtime)
    done = batch.fresh()
    assert "c2" not in tags(ledger, "start") and "d" in tags(ledger)
    assert done.failed_jobs == 1 and done.pending_jobs == 1  # the failed one; the skipped links are settled
    assert len(lines(ledger, "finally")) == 1 and lines(ledger, "then") == []


def test_bad_batches_store_nothing(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with current(runtime):
        with pytest.raises(SerializationError, match="lambdas and nested functions"):
            Bus.batch([flow.Step("a")]).then(lambda batch: None)
        with pytest.raises(SerializationError, match="app packages"):
            Bus.batch([flow.Step("a")]).then(_outside_app).dispatch()
        with pytest.raises(SerializationError, match="cannot queue a value"):
            Bus.batch([flow.Step("a"), jobs.Ok(lambda: 1)]).dispatch()  # type: ignore[arg-type]
        assert Bus.find_batch("no-such-batch") is None
    assert runtime.batches.recent() == [] and queue_size(runtime) == 0


def test_the_batch_commands(setup_factory, runtime_factory, ledger) -> None:  # type: ignore[no-untyped-def]
    import json

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    with current(runtime):
        batch = Bus.batch([flow.OneTry("bad", fail=True), flow.Step("ok")]).name("Nightly").dispatch()
    drain(runtime)
    listed = run_qctl(["batches", "--json"], setup.directory)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["id"] == batch.id and row["name"] == "Nightly" and row["failed_jobs"] == 1 and row["cancelled_at"]
    table = run_qctl(["batches"], setup.directory, env={"COLUMNS": "200"})
    assert batch.id in table.stdout and "Nightly" in table.stdout
    one = run_qctl(["batches", batch.id], setup.directory)
    assert one.returncode == 0 and batch.fresh().failed_job_ids[0] in one.stdout
    for args in (["batches", "nope"], ["retry-batch", "nope"]):
        missing = run_qctl(args, setup.directory)
        assert missing.returncode == 1 and missing.stderr.strip() == "error: no batch with id 'nope' (see `qctl batches`)"
    assert run_qctl(["batches", "--unfinished", "--json"], setup.directory).stdout.strip() == "[]"
    kept = run_qctl(["prune-batches"], setup.directory)
    assert kept.returncode == 0 and "Pruned 0 batches." in kept.stdout
    pruned = run_qctl(["prune-batches", "--hours", "0", "--cancelled", "0"], setup.directory)
    assert "Pruned 1 batch." in pruned.stdout and runtime.batches.find(batch.id) is None


def _outside_app(batch: object) -> None:
    """A module-level function of the tests package, which is not in `app`."""


@pytest.mark.parametrize("queue_kind,store_kind", [("redis", "redis"), ("postgresql", "database")])
def test_on_one_store_successes_ride_with_the_delete_and_the_last_goes_the_long_way(  # type: ignore[no-untyped-def]
        queue_kind, store_kind, setup_factory, runtime_factory, ledger) -> None:
    """Queue and batch store on one Redis, or one PostgreSQL database: a success that makes nothing due
    is recorded in the round trip that deletes its job and reserves the next; the one that makes `then`
    due is held back, recorded on its own, its callbacks run, and only then deleted."""
    runtime = runtime_factory(setup_factory(queue_kind, batch_store=store_kind))
    with current(runtime):  # a first batch loads the scripts: a Redis that has not seen the guard's
        Bus.batch([flow.Step("w0"), flow.Step("w1"), flow.Step("w2")]).dispatch()  # script settles it the long way
    drain(runtime)
    with current(runtime):
        batch = Bus.batch([flow.Step(f"j{n}") for n in range(6)]).then(flow.on_then).finally_(flow.on_finally).dispatch()
        with_progress = Bus.batch([flow.Step(f"p{n}") for n in range(3)]).progress(flow.on_progress).dispatch()
    store = runtime.batches.store
    long_way: list[str] = []
    record = store.record_success
    store.record_success = lambda batch_id, uuid: long_way.append(batch_id) or record(batch_id, uuid)  # type: ignore[method-assign]
    drain(runtime)
    done = batch.fresh()
    assert done.finished() and done.pending_jobs == 0 and len(lines(ledger, "then")) == 1
    assert len(lines(ledger, "finally")) == 1 and queue_size(runtime) == 0
    assert long_way.count(batch.id) == 1  # only the last; the five before it rode with their deletes
    assert long_way.count(with_progress.id) == 3  # progress callbacks run after every success: no riding
