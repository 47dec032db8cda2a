"""Signals on real worker processes (research C-05..C-08): finish the job, exit 0, pause and resume."""

from __future__ import annotations

import signal
import time

import pytest

from qctl.runtime import use
from tests.support.lifecycle import FAST_HEARTBEAT, ends, phases, started, worker_states
from tests.support.processes import spawn_qctl, wait_for

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]


@pytest.mark.parametrize(("signum", "kind"), [(signal.SIGTERM, kind) for kind in KINDS] + [(signal.SIGINT, "sqlite")],
                         ids=lambda value: getattr(value, "name", value))
def test_a_stop_signal_mid_job_finishes_it_exits_0_and_starts_no_other(setup_factory, runtime_factory, signum, kind, tmp_path, worker_slots) -> None:  # type: ignore[no-untyped-def]
    """One slow job per slot: every one finishes, the job queued after them never starts."""
    from qctl_testjobs import Ok, Sleep

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        slow = [Sleep(2, str(ledger)).dispatch() for _ in range(worker_slots)]
    worker = spawn_qctl(["work", "--sleep", "0.2"], setup.directory)
    wait_for(lambda: set(slow) <= started(ledger), 30, message="every slot's slow job to start")
    with use(runtime):  # queued once every slot is busy (slots reserving at once may pass each other's row)
        Ok(1, str(ledger)).dispatch()
    worker.signal(signum)
    assert worker.wait(timeout=2 + 10) == 0, worker.stderr()
    assert ends(ledger) == dict.fromkeys(slow, 1)
    assert runtime.connections.get().size("default") == 1  # the next job was not started
    assert "Traceback" not in worker.stderr()


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_while_waiting_for_work_exits_0_at_once(setup_factory, runtime_factory, kind) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    worker = spawn_qctl(["work", "--sleep", "60"], setup.directory, env=FAST_HEARTBEAT)
    wait_for(lambda: worker_states(runtime) == ["idle"], 30, interval=0.2, message="the worker to be idle")
    sent = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0, worker.stderr()
    assert time.monotonic() - sent < 10  # not after the 60 s sleep
    assert "Traceback" not in worker.stderr()


def test_sigusr2_pauses_and_sigcont_resumes(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Sleep

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        ids = [Sleep(0.5, str(ledger)).dispatch() for _ in range(4)]
    worker = spawn_qctl(["work", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT)
    wait_for(lambda: ids[0] in started(ledger), 30, message="the first job to start")
    worker.signal(signal.SIGUSR2)
    paused_at = time.monotonic()
    wait_for(lambda: worker_states(runtime) == ["paused"], 20, interval=0.2, message="the worker to report itself paused")
    time.sleep(1.0)
    assert set(ends(ledger)) == {ids[0]}  # the job in progress finished; nothing else ran while paused
    assert started(ledger) == {ids[0]}
    resumed_at = time.monotonic()
    worker.signal(signal.SIGCONT)
    wait_for(lambda: set(ends(ledger)) == set(ids), 30, message="every job to finish after SIGCONT")
    assert all(float(f[4]) > resumed_at for f in phases(ledger, "start") if f[1] != ids[0])
    assert paused_at < resumed_at
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0, worker.stderr()
