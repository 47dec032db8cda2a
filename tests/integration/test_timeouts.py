"""Timeouts with real worker processes: the soft path, the stuck-in-C path, --once, fail_on_timeout.

A timed-out worker exits with status 1 (both layers); its process manager (here
MiniSupervisor, or the test) starts the next one. Timing checks are generous
polling deadlines, never performance checks.
"""

from __future__ import annotations

import signal
import time

import pytest
import qctl_testjobs as jobs

from qctl.worker.timeout import EXIT_TIMED_OUT, GRACE_SECONDS
from tests.support.ledger import ledger_rows
from tests.support.processes import run_qctl, spawn_qctl, wait_for
from tests.support.workers import (
    MiniSupervisor,
    dispatch,
    failed_records,
    queue_size,
    wait_for_failed,
)

pytestmark = pytest.mark.usefixtures("worker_slots")  # every worker with one slot and with eight

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
WORK = ["work", "--sleep", "0.1"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)



def test_soft_timeout_counts_each_attempt_then_fails(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    slow = dispatch(runtime, jobs.SleepTimesOut(30, str(ledger)))  # timeout = 1 beats --timeout 60, tries = 3
    behind = dispatch(runtime, jobs.Ok(1, str(ledger)))
    with MiniSupervisor(WORK, setup.directory) as supervisor:
        record = wait_for_failed(runtime, slow, timeout=45)
        wait_for(lambda: len(supervisor.exits) >= 3, 10, message="three worker exits")
    assert record.error_line == "JobTimedOutError: qctl_testjobs.SleepTimesOut has timed out after 1s"
    assert [int(row[2]) for row in ledger_rows(ledger, "start", slow)] == [1, 2, 3]
    assert supervisor.statuses()[:3] == [EXIT_TIMED_OUT] * 3
    for start, exit in zip(ledger_rows(ledger, "start", slow), supervisor.exits, strict=False):
        assert exit.at - float(start[4]) <= 1 + GRACE_SECONDS + 2  # gone soon after its timeout
    assert ledger_rows(ledger, "end", behind) and queue_size(runtime) == 0
    assert "timed out after 1s; the worker exits" in supervisor.stderr()


def test_job_stuck_in_c_is_stopped_and_fails_on_its_next_reservation(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=3)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    stuck = dispatch(runtime, jobs.StuckInCTimesOut(10**10, str(ledger)))  # ~100 s in one C call, GIL held
    worker = spawn_qctl(WORK, setup.directory)
    try:
        wait_for(lambda: ledger_rows(ledger, "start", stuck), 30, message="the stuck job to start")
        started = float(ledger_rows(ledger, "start", stuck)[0][4])
        status = worker.wait(timeout=1 + GRACE_SECONDS + 5)
        gone_after = time.monotonic() - started
    finally:
        if worker.alive():  # a failed test must not leave a CPU-bound process behind
            worker.kill()
    assert status == EXIT_TIMED_OUT
    assert gone_after <= 1 + GRACE_SECONDS + 3
    assert not ledger_rows(ledger, "end", stuck)

    second = spawn_qctl(WORK, setup.directory)  # the process manager's fresh worker, on the same host
    try:
        record = wait_for_failed(runtime, stuck, timeout=3 + 15)  # reclaimed after retry_after: its one try is used
        assert second.alive()
    finally:
        second.signal(signal.SIGTERM)
        assert second.wait(15) == 0
    # a timed-out attempt, not a stall: the record says so, and the job did not run again
    assert record.error_line == ("JobTimedOutError: qctl_testjobs.StuckInCTimesOut has timed out after 1s "
                                 "(stopped by its hard timeout: stuck in C code)")
    assert len(ledger_rows(ledger, "start", stuck)) == 1 and queue_size(runtime) == 0
    # the stack dump faulthandler wrote as it ended the first worker, told by the next one
    assert f"job {stuck} was stopped by its hard timeout" in second.stderr()
    assert "Timeout (0:00:0" in second.stderr() and "in handle" in second.stderr()


def test_fail_on_timeout_fails_at_the_first_timeout(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    uuid = dispatch(runtime, jobs.SleepFailsOnTimeout(30, str(ledger)))  # tries = 5
    worker = spawn_qctl(WORK, setup.directory)
    assert worker.wait(30) == EXIT_TIMED_OUT
    assert "JobTimedOutError" in failed_records(runtime)[uuid].error_line
    assert len(ledger_rows(ledger, "start", uuid)) == 1 and queue_size(runtime) == 0


def test_once_is_timed_too_and_the_timed_out_attempt_counts(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    uuid = dispatch(runtime, jobs.SleepFirstAttempt(30, str(ledger)))  # tries = 2, no timeout of its own
    first = run_qctl(["work", "--once", "--timeout", "1"], setup.directory, timeout=1 + GRACE_SECONDS + 10)
    assert first.returncode == EXIT_TIMED_OUT
    second = run_qctl(["work", "--once", "--timeout", "1"], setup.directory)
    assert second.returncode == 0, second.stderr
    assert [int(row[2]) for row in ledger_rows(ledger, "end", uuid)] == [2]  # attempts() == 2 on the second run
    assert failed_records(runtime) == {} and queue_size(runtime) == 0


def test_a_job_longer_than_retry_after_is_not_handed_to_a_second_worker(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=3)  # renewed every second; 2 s left room for a loaded machine to miss one
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    long = dispatch(runtime, jobs.Sleep(7, str(ledger)))
    with MiniSupervisor([*WORK, "--timeout", "10"], setup.directory, count=2) as supervisor:
        wait_for(lambda: ledger_rows(ledger, "end", long), 20, message="the long job to finish")
        time.sleep(1)
    assert len(ledger_rows(ledger, "start", long)) == 1  # its lease was renewed while it ran
    assert supervisor.exits == [] and queue_size(runtime) == 0
