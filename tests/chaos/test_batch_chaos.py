"""Chaos for batches and chains (reliability.md §3.6 B-01, B-02, B-04, E-07, and chain crash points).

Workers are real `qctl work` processes, killed with SIGKILL at random or at named crash points;
the flow ledger (tests/fixtures/qctl_testjobs/flow.py) shows what ran and which callbacks fired.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
from qctl_testjobs import flow

from qctl import Bus
from tests.support.flows import current, lines, tags
from tests.support.processes import spawn_qctl, wait_for
from tests.support.workers import MiniSupervisor, failed_records, queue_size

pytestmark = pytest.mark.chaos

SCALE = max(1, int(os.environ.get("QCTL_CHAOS_SCALE", "1")))
WORK = ["work", "--sleep", "0.1", "--tries", "0"]
STORES = {"sqlite": "database", "postgresql": "database", "mariadb": "database", "redis": "redis"}


def env_for(ledger: Path, crash: str | None = None) -> dict[str, str]:
    env = {flow.LEDGER_ENV: str(ledger)}
    if crash:
        env["QCTL_CRASHPOINT"] = crash
    return env


def finished(runtime, batch_id: str) -> bool:  # type: ignore[no-untyped-def]
    batch = runtime.batches.find(batch_id)
    return batch is not None and batch.finished()


@pytest.mark.parametrize("kind", list(STORES))
@pytest.mark.usefixtures("worker_slots")
def test_batch_counts_survive_random_kill9(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """B-01: 200 jobs, 3 workers, one SIGKILLed at random; pending never negative, then/finally once."""
    setup = setup_factory(kind, retry_after=2, batch_store=STORES[kind])
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with current(runtime):
        batch = Bus.batch([flow.Step(f"j{n}", sleep=0.02) for n in range(200 * SCALE)]) \
            .then(flow.on_then).finally_(flow.on_finally).dispatch()
    seen: list[int] = []
    stop = threading.Event()
    watcher = runtime_factory(setup)

    def sample() -> None:
        while not stop.wait(0.05):
            found = watcher.batches.find(batch.id)
            if found is not None:
                seen.append(found.pending_jobs)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rng = random.Random(int(os.environ.get("QCTL_CHAOS_SEED", "20261201")))
    with MiniSupervisor(WORK, setup.directory, count=3, env=env_for(ledger)) as supervisor:
        until = time.monotonic() + 6 * SCALE
        while time.monotonic() < until and not finished(runtime, batch.id):
            time.sleep(rng.uniform(0.3, 0.9))
            supervisor.kill_random(rng)
        wait_for(lambda: finished(runtime, batch.id), 60 * SCALE, interval=0.3, message="the batch to finish")
        supervisor.stop()
    stop.set()
    sampler.join(5)
    done = batch.fresh()
    assert (done.total_jobs, done.pending_jobs, done.failed_jobs) == (200 * SCALE, 0, 0)
    assert len(lines(ledger, "then")) == 1 and len(lines(ledger, "finally")) == 1
    assert seen and min(seen) >= 0 and len(supervisor.killed) >= 3
    assert set(tags(ledger)) == {f"j{n}" for n in range(200 * SCALE)}
    assert queue_size(runtime) == 0 and failed_records(runtime) == {}


@pytest.mark.parametrize(("kind", "workers"), [("sqlite", 4), ("postgresql", 8), ("mariadb", 8)])
def test_batch_counter_contention(setup_factory, runtime_factory, kind, workers, worker_slots, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """B-02: 1,000 tiny jobs on many workers at once: pending reaches exactly 0, then runs once.
    With 8 slots a quarter of the processes (as many threads, within the servers' connection limits)."""
    workers = workers if worker_slots == 1 else max(2, workers // 4)
    setup = setup_factory(kind, retry_after=30)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with current(runtime):
        batch = Bus.batch([flow.Step(f"j{n}") for n in range(1000)]).then(flow.on_then).dispatch()
    procs = [spawn_qctl(["work", "--stop-when-empty"], setup.directory, env=env_for(ledger), name=f"w{n}")
             for n in range(workers)]
    statuses = [proc.wait(120) for proc in procs]
    done = batch.fresh()
    assert statuses == [0] * workers, [p.stderr() for p in procs]
    assert done.pending_jobs == 0 and done.finished() and len(lines(ledger, "then")) == 1
    assert len(tags(ledger)) == 1000


@pytest.mark.parametrize(("kind", "point"), [
    ("sqlite", "batch_after_counter_before_ack:5"),  # the last job counted, its `then` not yet run
    ("sqlite", "batch_after_callback_before_done:1"),  # `then` ran, not yet marked done: runs again
    ("sqlite", "after_handle_before_ack:5"),  # everything done but the ack
    # Redis: the first four ride with their deletes; the last, which makes `then` due, is counted
    # the long way once the reserve held it back
    ("redis", "batch_after_counter_before_ack:1"),
    ("redis", "after_handle_before_ack:5"),
])
def test_a_crash_between_count_and_ack_counts_once(setup_factory, runtime_factory, kind, point, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """B-04: a redelivered batch job never decrements twice, and `then` is never skipped."""
    setup = setup_factory(kind, retry_after=2, batch_store="redis" if kind == "redis" else "database")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with current(runtime):
        batch = Bus.batch([flow.Step(f"j{n}") for n in range(5)]).then(flow.on_then).finally_(flow.on_finally).dispatch()
    with MiniSupervisor(WORK, setup.directory, env=env_for(ledger, point), restart_env=env_for(ledger)) as supervisor:
        wait_for(lambda: finished(runtime, batch.id) and queue_size(runtime) == 0, 30, interval=0.2,
                 message="the batch to finish and its last job to leave the queue")
        time.sleep(0.3)
        supervisor.stop()
    assert 137 in supervisor.statuses()
    done = batch.fresh()
    assert done.pending_jobs == 0 and done.total_jobs == 5
    thens, finallys = len(lines(ledger, "then")), len(lines(ledger, "finally"))
    if point.startswith("batch_after_callback_before_done"):
        assert thens == 2 and finallys == 1  # killed right after the callback: it runs again, once
    else:
        assert thens == 1 and finallys == 1


@pytest.mark.parametrize(("kind", "store"), [("sqlite", "database"), ("redis", "database")])
def test_a_crash_inside_add_leaves_the_counts_right(setup_factory, runtime_factory, kind, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """E-07: killed between counting added jobs and queueing them. On one database both are one
    transaction (neither happened); across stores the adder runs again and queues what it counted."""
    setup = setup_factory(kind, retry_after=2, batch_store=store)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with current(runtime):
        batch = Bus.batch([flow.Adder(5, "x")]).then(flow.on_then).dispatch()
    crash = "batch_add_after_counter_before_push:1"
    with MiniSupervisor(WORK, setup.directory, env=env_for(ledger, crash), restart_env=env_for(ledger)) as supervisor:
        wait_for(lambda: finished(runtime, batch.id), 30, interval=0.2, message="the batch to finish")
        supervisor.stop()
    assert 137 in supervisor.statuses()
    done = batch.fresh()
    assert (done.total_jobs, done.pending_jobs) == (6, 0)
    assert sorted(set(tags(ledger))) == [f"x-{n}" for n in range(5)]
    assert len(lines(ledger, "adder")) == 2 and len(lines(ledger, "then")) == 1


@pytest.mark.parametrize("point", ["after_handle_before_ack:1", "after_handle_before_ack:2", "after_handle_before_ack:3"])
def test_a_chain_killed_before_its_ack_runs_to_its_end(setup_factory, runtime_factory, point, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The successor is pushed in the transaction that deletes the link: a link killed before that
    runs again and pushes it then; every link ran at least once, the chain reached its end once."""
    setup = setup_factory("redis" if point.endswith("3") else "sqlite", retry_after=2)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with current(runtime):
        Bus.chain([flow.Step("a"), flow.Step("b"), flow.Step("c"), flow.Step("d")]).dispatch()
    with MiniSupervisor(WORK, setup.directory, env=env_for(ledger, point), restart_env=env_for(ledger)) as supervisor:
        wait_for(lambda: "d" in tags(ledger) and queue_size(runtime) == 0, 30, interval=0.2, message="the chain's end")
        supervisor.stop()
    assert 137 in supervisor.statuses()
    ends = tags(ledger)
    assert set(ends) == {"a", "b", "c", "d"} and ends.count("d") == 1 and len(ends) <= 5


def test_a_chain_across_connections_is_at_least_once(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Links on two connections: killed after pushing the successor but before marking it, the link
    runs again and pushes it again (at least once); killed after the mark, it does not."""
    setup = setup_factory("sqlite", retry_after=2, extra=other_connection(tmp_path))
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with current(runtime):
        Bus.chain([flow.Step("a"), flow.Step("b").on_connection("other"), flow.Step("c")]).dispatch()
    point = "chain_after_push_before_mark:1"
    with MiniSupervisor(WORK, setup.directory, env=env_for(ledger, point), restart_env=env_for(ledger)) as main, \
            MiniSupervisor([*WORK, "other"], setup.directory, env=env_for(ledger)) as other:
        wait_for(lambda: "c" in tags(ledger), 30, interval=0.2, message="the chain's end")
        time.sleep(0.5)
        main.stop()
        other.stop()
    assert 137 in main.statuses()
    ends = tags(ledger)
    assert ends.count("a") == 2 and ends.count("b") == 2 and ends.count("c") >= 1


def other_connection(tmp_path: Path) -> str:
    return f'\n[connections.other]\ndriver = "database"\nurl = "sqlite:///{tmp_path}/other.sqlite"\n'
