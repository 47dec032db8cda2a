"""`qctl restart`, `qctl down`/`up` and `--memory` on real worker processes (research W-01, W-02, W-04)."""

from __future__ import annotations

import time

import pytest

from qctl.runtime import use
from qctl.worker.controls import CHECK_SECONDS
from tests.support.lifecycle import FAST_HEARTBEAT, ends, started, worker_states
from tests.support.processes import run_qctl, spawn_qctl, wait_for

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
LIFECYCLE_APP = ("qctl_testjobs", "qctl_lifecyclejobs")


@pytest.mark.parametrize("kind", KINDS)
def test_restart_stops_idle_workers_and_a_busy_one_after_its_job(setup_factory, runtime_factory, kind, tmp_path, worker_slots) -> None:  # type: ignore[no-untyped-def]
    """The busy worker has one held job per slot: it finishes them all, then exits."""
    from qctl_lifecyclejobs import Gate
    from qctl_testjobs import Ok

    setup = setup_factory(kind, app=LIFECYCLE_APP)
    runtime = runtime_factory(setup)
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    with use(runtime):
        busy_jobs = [Gate(str(gate), str(ledger)).dispatch() for _ in range(worker_slots)]
    busy = spawn_qctl(["work", "--sleep", "0.2"], setup.directory, name="busy")
    idle = [spawn_qctl(["work", "--queue", "elsewhere", "--sleep", "0.5"], setup.directory, name=f"idle{i}") for i in range(2)]
    wait_for(lambda: set(busy_jobs) <= started(ledger), 30, message="the busy worker's jobs to start")
    with use(runtime):  # queued once every slot is busy (slots reserving at once may pass each other's row)
        waiting = Ok(1, str(ledger)).dispatch()
    assert run_qctl(["restart"], setup.directory).returncode == 0
    for worker in idle:
        assert worker.wait(timeout=0.5 + 1 + 10) == 0, worker.stderr()
    assert busy.alive()  # still in its jobs
    # a pool's slots read the flags its main thread last read (at most once a second): let that pass
    time.sleep(CHECK_SECONDS + 0.2)
    gate.touch()  # the jobs end only now, after the restart signal
    assert busy.wait(timeout=10) == 0, busy.stderr()
    assert ends(ledger) == dict.fromkeys(busy_jobs, 1)  # the busy worker finished its jobs first
    assert waiting not in started(ledger)  # and took no other after the restart signal
    assert runtime.connections.get().size("default") == 1
    late = spawn_qctl(["work", "--stop-when-empty", "--sleep", "0.2"], setup.directory, name="late")
    assert late.wait(timeout=30) == 0  # a worker started after the restart is not affected by it
    assert ends(ledger)[waiting] == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_down_holds_workers_back_except_with_force_and_up_releases_them(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    assert run_qctl(["down"], setup.directory).returncode == 0
    with use(runtime):
        held = {Ok(n, str(ledger)).on_queue("held").dispatch() for n in range(3)}
        forced = {Ok(n, str(ledger)).on_queue("forced").dispatch() for n in range(3)}
    normal = spawn_qctl(["work", "--queue", "held", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT, name="normal")
    force = spawn_qctl(["work", "--queue", "forced", "--force", "--sleep", "0.2"], setup.directory, name="force")
    wait_for(lambda: set(ends(ledger)) == forced, 30, message="--force to work while down")
    wait_for(lambda: "down" in worker_states(runtime), 20, message="the other worker to report itself down")
    assert started(ledger).isdisjoint(held)
    assert run_qctl(["up"], setup.directory).returncode == 0
    wait_for(lambda: set(ends(ledger)) == forced | held, 30, message="the held jobs to run after `qctl up`")
    for worker in (normal, force):
        worker.signal()
        assert worker.wait(timeout=10) == 0, worker.stderr()


def test_memory_limit_exits_12_right_after_the_job(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_lifecyclejobs import Hog
    from qctl_testjobs import Ok

    setup = setup_factory("sqlite", app=LIFECYCLE_APP)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        hog = Hog(200, str(ledger)).dispatch()
        after = Ok(1, str(ledger)).dispatch()
    worker = spawn_qctl(["work", "--memory", "150", "--sleep", "0.2"], setup.directory)
    assert worker.wait(timeout=30) == 12, worker.stderr()
    assert ends(ledger) == {hog: 1}
    assert after not in started(ledger)
    assert runtime.connections.get().size("default") == 1  # the hog left the queue; the next job waits
    assert runtime.failed_store.count() == 0
