"""`qctl pause` / `qctl continue` on real worker processes: a paused queue is skipped, the others are worked."""

from __future__ import annotations

import pytest

from qctl.runtime import use
from tests.support.lifecycle import FAST_HEARTBEAT, ends, listed_workers, started
from tests.support.processes import run_qctl, spawn_qctl, wait_for

KINDS = ["sqlite", "postgresql", "redis"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_paused_queue_is_skipped_while_the_worker_keeps_its_other_queues(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    paused = run_qctl(["pause", "main:emails"], setup.directory)
    assert paused.returncode == 0, paused.stderr
    assert "Paused main:emails" in paused.stdout
    with use(runtime):
        emails = {Ok(n, str(ledger)).on_queue("emails").dispatch() for n in range(3)}
        default = {Ok(n, str(ledger)).dispatch() for n in range(3)}
    worker = spawn_qctl(["work", "--queue", "emails,default", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT)
    wait_for(lambda: set(ends(ledger)) == default, 30, message="the unpaused queue's jobs to run")
    wait_for(lambda: [w["paused_queues"] for w in listed_workers(setup.directory)] == [["emails"]], 20,
             message="`qctl workers` to show the paused queue")
    assert started(ledger).isdisjoint(emails)  # emails comes first in priority, yet nothing was taken from it
    assert "queue emails paused; taking jobs from default" in worker.stderr()
    again = run_qctl(["pause", "main:emails"], setup.directory)
    assert again.returncode == 0 and "main:emails was already paused (since " in again.stdout

    assert run_qctl(["continue", "main:emails"], setup.directory).returncode == 0
    wait_for(lambda: set(ends(ledger)) == default | emails, 30, message="the continued queue's jobs to run")

    # Pausing a running worker's queue: once it has seen the flag, new jobs there wait.
    assert run_qctl(["pause", "main:default"], setup.directory).returncode == 0
    wait_for(lambda: "queue default paused; taking jobs from emails" in worker.stderr(), 20,
             message="the worker to see the pause")
    with use(runtime):
        held = Ok(10, str(ledger)).dispatch()
        taken = Ok(11, str(ledger)).on_queue("emails").dispatch()
    wait_for(lambda: taken in ends(ledger), 30, message="the job on the other queue to run")
    assert held not in started(ledger)
    assert runtime.connections.get().size("default") == 1
    assert run_qctl(["continue", "main:default"], setup.directory).returncode == 0
    wait_for(lambda: held in ends(ledger), 30, message="the held job to run after `qctl continue`")
    worker.signal()
    assert worker.wait(timeout=10) == 0, worker.stderr()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_worker_whose_every_queue_is_paused_reports_it_and_takes_nothing(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    assert run_qctl(["pause", "main"], setup.directory).returncode == 0  # a bare connection: its default queue
    with use(runtime):
        job = Ok(1, str(ledger)).dispatch()
    worker = spawn_qctl(["work", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT)
    wait_for(lambda: [w["state"] for w in listed_workers(setup.directory)] == ["queues paused"], 20,
             message="the worker to report its queues paused")
    table = run_qctl(["workers"], setup.directory, env={"COLUMNS": "200"})
    assert "default (paused)" in table.stdout and "Paused queues: main:default" in table.stdout
    assert job not in started(ledger)
    assert run_qctl(["continue", "main:default"], setup.directory).returncode == 0
    wait_for(lambda: job in ends(ledger), 30, message="the job to run after `qctl continue`")
    worker.signal()
    assert worker.wait(timeout=10) == 0, worker.stderr()


@pytest.mark.parametrize(("argument", "says"), [
    ("nosuchconn:q", "no connection named 'nosuchconn'"),
    ("nosuchconn", "no connection named 'nosuchconn'"),
    ("main:", "expected CONNECTION:QUEUE"),
    (":emails", "expected CONNECTION:QUEUE"),
    ("main:a,b", "cannot contain commas"),
    ("sync:default", "a sync connection has no workers to pause"),
])
@pytest.mark.parametrize("command", ["pause", "continue"])
def test_a_target_that_names_no_queue_is_one_line_and_exit_2(setup_factory, command, argument, says) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    result = run_qctl([command, "main:fine", argument], setup.directory)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""  # checked before anything was changed: main:fine was not paused either
    assert "was not paused" in run_qctl(["continue", "main:fine"], setup.directory).stdout
