"""`qctl supervise`: a real supervisord pool draining jobs, restarting killed workers, cycling on `qctl restart`."""

from __future__ import annotations

import signal

import psutil

from qctl.runtime import use
from tests.support.lifecycle import ends, phases, started
from tests.support.processes import WorkerProcess, run_qctl, spawn_qctl, wait_for

POOL = ["supervise", "--numprocs", "2", "--sleep", "0.2", "--timeout", "30"]


def pool_pids(supervise: WorkerProcess) -> set[int]:
    """The worker processes (supervise → supervisord → qctl work)."""
    try:
        children = psutil.Process(supervise.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set()
    pids = set()
    for child in children:
        try:
            if "work" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def every_process_of(supervise: WorkerProcess) -> list[psutil.Process]:
    return list(psutil.Process(supervise.pid).children(recursive=True))


def all_gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


def test_a_pool_drains_jobs_and_sigterm_lets_jobs_in_flight_finish(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok, Sleep

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        quick = {Ok(n, str(ledger)).dispatch() for n in range(20)}
    pool = spawn_qctl(POOL, setup.directory, name="pool")
    wait_for(lambda: set(ends(ledger)) == quick, 60, message="the pool to drain the queue")
    assert len(pool_pids(pool)) == 2
    with use(runtime):
        slow = {Sleep(3, str(ledger)).dispatch() for _ in range(2)}
        waiting = Ok(99, str(ledger)).dispatch()
    wait_for(lambda: slow <= started(ledger), 30, message="both slow jobs to start")
    processes = every_process_of(pool)
    pool.signal(signal.SIGTERM)
    assert pool.wait(timeout=3 + 15) == 0, pool.stderr()
    assert set(ends(ledger)) == quick | slow  # jobs in flight finished
    assert waiting not in started(ledger)
    assert all(count == 1 for count in ends(ledger).values())
    wait_for(lambda: all_gone(processes), 10, message="supervisord and its workers to exit")


def test_a_worker_killed_with_9_is_started_again(setup_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    pool = spawn_qctl(POOL, setup.directory, name="pool")
    seen: dict[str, set[int]] = {}

    def workers_are(condition):  # type: ignore[no-untyped-def]
        def check() -> bool:
            seen["now"] = pool_pids(pool)  # the snapshot the condition held on, for the asserts after
            return bool(condition(seen["now"]))
        return check

    wait_for(workers_are(lambda pids: len(pids) == 2), 30, message="two workers")
    first = seen["now"]
    victim = min(first)
    psutil.Process(victim).kill()
    wait_for(workers_are(lambda pids: len(pids) == 2 and victim not in pids), 30, message="a replacement worker")
    assert len(seen["now"] - first) == 1
    processes = every_process_of(pool)
    pool.kill()  # even a parent killed with -9 leaves no orphaned pool behind
    wait_for(lambda: all_gone(processes), 30, message="supervisord and its workers to stop after the parent died")


def test_qctl_restart_cycles_the_pool_without_losing_a_job(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Sleep

    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        ids = {Sleep(0.2, str(ledger)).dispatch() for _ in range(30)}
    pool = spawn_qctl(POOL, setup.directory, name="pool")
    wait_for(lambda: len(ends(ledger)) >= 4, 60, message="the pool to get going")
    before = pool_pids(pool)
    assert len(before) == 2
    assert run_qctl(["restart"], setup.directory).returncode == 0
    wait_for(lambda: len(pool_pids(pool)) == 2 and not pool_pids(pool) & before, 30, message="two fresh workers")
    with use(runtime):
        ids |= {Sleep(0.2, str(ledger)).dispatch() for _ in range(10)}  # work for the new generation
    wait_for(lambda: set(ends(ledger)) == ids, 60, message="every job to finish")
    assert all(count == 1 for count in ends(ledger).values())  # none lost, none run twice
    workers_that_ran = {int(fields[3]) for fields in phases(ledger, "end")}
    assert workers_that_ran & before and workers_that_ran - before  # both generations did work
    assert runtime.connections.get().size("default") == 0
    pool.signal(signal.SIGINT)
    assert pool.wait(timeout=20) == 0, pool.stderr()
