"""`async def handle` jobs without `--concurrency`: dispatch_sync, a single-slot worker, its timeout."""

from __future__ import annotations

import asyncio

import qctl_testjobs as jobs

from tests.support.flows import current, drain
from tests.support.ledger import analyse, ledger_rows
from tests.support.processes import read_ledger, run_qctl
from tests.support.workers import dispatch, failed_records, queue_size


def test_dispatch_sync_runs_an_async_job_to_completion_from_sync_and_from_async_code(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    ledger, touched = tmp_path / "ledger", tmp_path / "touched"
    with current(runtime):
        jobs.AsyncSleep(0.01, str(ledger)).dispatch_sync()
        assert [row[0] for row in read_ledger(ledger)] == ["start", "end"]

        async def caller() -> str:  # a loop is running here: the job's coroutine runs beside it
            jobs.qctl.dispatch_sync(jobs.async_touch, str(touched), 0.01)
            await asyncio.sleep(0)
            return touched.read_text()

        assert asyncio.run(caller()) == "touched"
    assert queue_size(runtime) == 0


def test_a_single_slot_worker_runs_async_and_sync_jobs(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("redis"))
    ledger = tmp_path / "ledger"
    ids = runtime.dispatcher.bulk([jobs.AsyncSleep(0.01, str(ledger)), jobs.Ok(1, str(ledger)), jobs.AsyncSleep(0.01, str(ledger))])
    with current(runtime):
        drain(runtime)
    report = analyse(ledger, ids, killed_pids=[])
    assert report.completed == 3 and report.duplicates == 0
    assert queue_size(runtime) == 0


def test_a_single_slot_async_timeout_cancels_the_job_and_the_worker_goes_on(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    late = dispatch(runtime, jobs.AsyncSleepTimesOut(30, str(ledger)))
    fine = dispatch(runtime, jobs.Ok(1, str(ledger)))
    result = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory, timeout=60)
    assert result.returncode == 0, result.stderr  # no thread was left running: the process carries on
    assert "its coroutine was cancelled" in result.stderr
    record = failed_records(runtime)[late]
    assert "JobTimedOutError" in record.exception
    assert [row[2] for row in ledger_rows(ledger, "start", late)] == ["1", "2"] and not ledger_rows(ledger, "end", late)
    assert ledger_rows(ledger, "end", fine)
