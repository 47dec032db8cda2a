"""`qctl work --concurrency N`: real worker processes with several job slots, on every driver.

Each test reads what happened from the ledger the jobs append to (start/end lines with the pid),
so it proves no loss and explains every duplicate independently of the store under test.
"""

from __future__ import annotations

import json
import signal

import pytest
import qctl_testjobs as jobs

from tests.support.ledger import analyse, ledger_rows
from tests.support.processes import read_ledger, run_qctl, spawn_qctl, wait_for
from tests.support.workers import dispatch, failed_records, queue_size, wait_for_failed

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
WORK = ["work", "--sleep", "0.1", "--concurrency", "8"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def started(ledger, uuids) -> int:  # type: ignore[no-untyped-def]
    wanted = set(uuids)
    return sum(1 for row in read_ledger(ledger) if row[0] == "start" and row[1] in wanted)


def test_eight_slots_run_eight_jobs_at_once_and_drain(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """16 jobs of 1 s on 8 slots: 8 run together (their runs overlap), all end, the worker exits 0."""
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = runtime.dispatcher.bulk([jobs.Sleep(1, str(ledger)) for _ in range(16)])
    result = run_qctl([*WORK, "--stop-when-empty"], setup.directory, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = read_ledger(ledger)
    starts = sorted(float(row[4]) for row in rows if row[0] == "start")
    ends = sorted(float(row[4]) for row in rows if row[0] == "end")
    assert len(starts) == 16 and len(ends) == 16
    assert starts[7] < ends[0], "the first eight jobs did not run at the same time"
    assert {row[3] for row in rows} == {rows[0][3]}, "one process ran them all"
    report = analyse(ledger, ids, killed_pids=[])
    assert report.lost == [] and report.duplicates == 0, report.summary()
    assert queue_size(runtime) == 0


def test_async_jobs_share_one_event_loop(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """`async def handle` jobs and a queued async function, up to N in flight, beside sync jobs."""
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    touched = tmp_path / "touched"
    ids = runtime.dispatcher.bulk([jobs.AsyncSleep(1, str(ledger)) for _ in range(8)] + [jobs.Sleep(1, str(ledger))])
    runtime.dispatcher.dispatch(jobs.qctl.queued(jobs.async_touch, str(touched)))
    result = run_qctl([*WORK, "--stop-when-empty"], setup.directory, timeout=60)
    assert result.returncode == 0, result.stderr
    assert touched.read_text() == "touched"
    rows = read_ledger(ledger)
    starts = sorted(float(row[4]) for row in rows if row[0] == "start")
    ends = sorted(float(row[4]) for row in rows if row[0] == "end")
    assert len(ends) == 9 and starts[7] < ends[0], "eight coroutines did not run at the same time"
    assert analyse(ledger, ids, killed_pids=[]).lost == []


def test_sigterm_mid_flight_finishes_every_job_then_exits_0(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = runtime.dispatcher.bulk([jobs.Sleep(2, str(ledger)) for _ in range(8)] + [jobs.Ok(n) for n in range(8)])
    worker = spawn_qctl(WORK, setup.directory)
    try:
        wait_for(lambda: started(ledger, ids) == 8, 30, message="eight jobs in flight")
        worker.signal(signal.SIGTERM)
        status = worker.wait(30)
    finally:
        if worker.alive():
            worker.kill()
    assert status == 0, worker.stderr_path.read_text()
    ends = [row for row in read_ledger(ledger) if row[0] == "end"]
    assert len(ends) == 8, "a job in flight did not finish"
    assert queue_size(runtime) == 8  # the Ok jobs were never taken: the worker stopped taking jobs


def test_kill9_with_eight_in_flight_brings_all_eight_back(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=2)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = runtime.dispatcher.bulk([jobs.SleepFirstAttempt(30, str(ledger)) for _ in range(8)])
    first = spawn_qctl(WORK, setup.directory, name="first")
    second = None
    try:
        wait_for(lambda: started(ledger, ids) == 8, 30, message="eight jobs in flight")
        first.kill()
        first.wait(15)
        second = spawn_qctl(WORK, setup.directory, name="second")
        wait_for(lambda: analyse(ledger, ids, killed_pids=[first.pid]).completed == 8, 2 + 30,
                 message="all eight to come back after retry_after")
        second.signal(signal.SIGTERM)
        assert second.wait(30) == 0, second.stderr_path.read_text()
    finally:
        for worker in (first, second):
            if worker is not None and worker.alive():
                worker.kill()
    report = analyse(ledger, ids, killed_pids=[first.pid])
    assert report.lost == [] and report.completed == 8, report.summary()
    assert all(row[2] == "2" for row in read_ledger(ledger) if row[0] == "end")
    assert failed_records(runtime) == {}


def test_a_thread_past_its_timeout_releases_the_others_and_exits_1(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """The timed-out job is recorded (released for its next attempt, its tries counted); the seven
    others are released at once, so another worker completes them without waiting for retry_after."""
    setup = setup_factory(kind, retry_after=600)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    stuck = dispatch(runtime, jobs.SleepFirstAttemptTimesOut(30, str(ledger)))
    others = runtime.dispatcher.bulk([jobs.SleepFirstAttempt(3, str(ledger)) for _ in range(7)])
    first = spawn_qctl(WORK, setup.directory, name="first")
    try:
        wait_for(lambda: started(ledger, [stuck, *others]) == 8, 30, message="eight jobs in flight")
        status = first.wait(30)
    finally:
        if first.alive():
            first.kill()
    assert status == 1
    err = first.stderr_path.read_text()
    assert "timed out after 1s; the worker exits" in err and "released 7 other job(s) in flight" in err
    result = run_qctl([*WORK, "--stop-when-empty"], setup.directory, timeout=60)
    assert result.returncode == 0, result.stderr
    report = analyse(ledger, [stuck, *others], killed_pids=[first.pid])
    assert report.lost == [] and report.completed == 8, report.summary()
    assert ledger_rows(ledger, "end", stuck)[0][2] == "2"  # the timeout was its first attempt
    assert failed_records(runtime) == {}


def test_an_async_job_past_its_timeout_is_cancelled_and_the_worker_goes_on(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    late = dispatch(runtime, jobs.AsyncSleepTimesOut(30, str(ledger)))
    fine = runtime.dispatcher.bulk([jobs.AsyncSleep(0.2, str(ledger)) for _ in range(4)])
    result = run_qctl([*WORK, "--stop-when-empty"], setup.directory, timeout=60)
    assert result.returncode == 0, result.stderr
    record = wait_for_failed(runtime, late, 5)
    assert "JobTimedOutError" in record.exception and "timed out after 1s" in record.exception
    assert [row[2] for row in ledger_rows(ledger, "start", late)] == ["1", "2"]  # tries = 2: released, then failed
    assert analyse(ledger, fine, killed_pids=[]).completed == 4


def test_sync_code_blocking_the_loop_is_treated_as_a_thread_past_its_timeout(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=600)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    blocker = dispatch(runtime, jobs.AsyncBlocksLoop(30, str(ledger)))
    runtime.dispatcher.bulk([jobs.AsyncSleep(20, str(ledger)) for _ in range(2)])
    result = run_qctl(WORK, setup.directory, timeout=60)
    assert result.returncode == 1
    assert "released 2 other job(s) in flight" in result.stderr
    record = wait_for_failed(runtime, blocker, 5)  # tries = 1: failed as timed out
    assert "timed out after 1s" in record.exception
    assert queue_size(runtime) == 2  # the two it held are back, ready at once


def test_max_jobs_is_counted_across_slots(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    runtime.dispatcher.bulk([jobs.Ok(n) for n in range(30)])
    result = run_qctl([*WORK, "--max-jobs", "10"], setup.directory, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "max jobs" in result.stderr
    assert queue_size(runtime) == 20


def test_workers_lists_every_slots_job(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory("redis")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = runtime.dispatcher.bulk([jobs.Sleep(20, str(ledger)) for _ in range(3)])
    worker = spawn_qctl(WORK, setup.directory, env={"QCTL_HEARTBEAT_SECONDS": "0.2"})
    try:
        wait_for(lambda: started(ledger, ids) == 3, 30, message="three jobs in flight")

        def listed() -> list[dict[str, object]]:
            out = run_qctl(["workers", "--json"], setup.directory, timeout=30).stdout
            return [row for row in json.loads(out) if row["pid"] == worker.pid]

        wait_for(lambda: any(len(row["jobs"]) == 3 for row in listed()), 20, message="three jobs in the heartbeat")
        (row,) = listed()
        assert row["concurrency"] == 8 and row["state"] == "working"
        assert sorted(job["job_id"] for job in row["jobs"]) == sorted(ids)
        table = run_qctl(["workers"], setup.directory, timeout=30, env={"COLUMNS": "200"}).stdout
        assert "working 3/8" in table
    finally:
        worker.kill()


def most_at_once(rows: list[list[str]], pid: str) -> int:
    """The most jobs process `pid` had between their start and end lines at one moment."""
    marks = sorted((float(row[4]), 1 if row[0] == "start" else -1) for row in rows if row[3] == pid)
    running = peak = 0
    for _, step in marks:
        running += step
        peak = max(peak, running)
    return peak


def test_four_processes_of_eight_slots_run_two_thousand_jobs_exactly_once(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    # fast jobs (one slot drains them) mixed with 20 ms ones (every slot opens for those)
    ids = runtime.dispatcher.bulk([jobs.Ok(n, str(ledger)) if n % 2 else jobs.Sleep(0.02, str(ledger)) for n in range(2000)])
    workers = [spawn_qctl([*WORK, "--stop-when-empty"], setup.directory, name=f"w{n}") for n in range(4)]
    statuses = [worker.wait(timeout=240) for worker in workers]
    assert statuses == [0, 0, 0, 0], [worker.stderr()[-2000:] for worker in workers]
    report = analyse(ledger, ids, killed_pids=[])
    assert report.lost == [] and report.duplicates == 0 and report.unexplained == [], report.summary()
    rows = read_ledger(ledger)
    pids = {row[3] for row in rows}
    assert len(pids) >= 2, "one process ran every job"
    assert max(most_at_once(rows, pid) for pid in pids) > 1, "no process ran two jobs at once"
    assert queue_size(runtime) == 0


@pytest.mark.parametrize("stop", ["restart", "max-time"])
@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_restart_and_max_time_let_every_slot_finish_and_take_nothing_more(setup_factory, runtime_factory, store, stop, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(store)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    busy = runtime.dispatcher.bulk([jobs.Sleep(4, str(ledger)) for _ in range(4)])  # longer than a restart takes to be seen
    extra = ["--max-time", "1"] if stop == "max-time" else []
    worker = spawn_qctl(["work", "--sleep", "0.1", "--concurrency", "4", *extra], setup.directory)
    wait_for(lambda: started(ledger, busy) == 4, 30, message="every slot's job to start")
    waiting = dispatch(runtime, jobs.Ok(1, str(ledger)))  # once every slot is busy
    if stop == "restart":
        assert run_qctl(["restart"], setup.directory).returncode == 0
    assert worker.wait(timeout=30) == 0, worker.stderr()
    assert analyse(ledger, busy, killed_pids=[]).completed == 4
    assert started(ledger, [waiting]) == 0 and queue_size(runtime) == 1
    assert ("restart" if stop == "restart" else "max time") in worker.stderr()


def test_the_memory_limit_lets_the_jobs_in_flight_finish_then_exits_12(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory("redis")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = runtime.dispatcher.bulk([jobs.Sleep(0.5, str(ledger)) for _ in range(40)])
    result = run_qctl([*WORK, "--memory", "1"], setup.directory, timeout=60)  # passed as soon as it is measured
    assert result.returncode == 12, result.stderr
    report = analyse(ledger, ids, killed_pids=[])
    assert report.unexplained == [] and report.duplicates == 0  # every job that started also ended
    assert 1 <= report.completed < 40 and queue_size(runtime) == 40 - report.completed
