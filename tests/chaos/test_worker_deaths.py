"""Chaos: workers killed at random, at named crash points, and stopped by signals (reliability.md §3).

Marked `chaos`; the default sizes keep the module within a few minutes on two cores,
`QCTL_CHAOS_SCALE=N` multiplies the job counts and the kill period.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import qctl_testjobs as jobs

from qctl.crashpoints import EXIT_CRASHED
from tests.support.ledger import analyse, ledger_rows
from tests.support.processes import read_ledger, spawn_qctl, wait_for
from tests.support.workers import (
    MiniSupervisor,
    dispatch,
    failed_records,
    queue_size,
    wait_for_failed,
)

pytestmark = pytest.mark.chaos

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
SCALE = max(1, int(os.environ.get("QCTL_CHAOS_SCALE", "1")))
WORK = ["work", "--sleep", "0.2"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)



@pytest.mark.usefixtures("worker_slots")
def test_kill9_mid_job_is_redelivered_and_nothing_else_is_lost(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """C-01: the slow job's worker is SIGKILLed; after retry_after another worker completes it."""
    setup = setup_factory(kind, retry_after=2)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    slow = dispatch(runtime, jobs.SleepFirstAttempt(30, str(ledger)))
    others = [dispatch(runtime, jobs.Ok(n, str(ledger))) for n in range(200)]
    workers = [spawn_qctl(WORK, setup.directory, name=f"w{n}") for n in range(2)]
    try:
        wait_for(lambda: ledger_rows(ledger, "start", slow), 30, message="the slow job to start")
        holder = int(ledger_rows(ledger, "start", slow)[0][3])
        victim = next(w for w in workers if w.pid == holder)
        victim.kill()
        wait_for(lambda: ledger_rows(ledger, "end", slow), 2 + 30, message="the slow job to be redelivered")
        wait_for(lambda: queue_size(runtime) == 0, 30, message="the queue to empty")
    finally:
        for worker in workers:
            if worker.alive():
                worker.signal(signal.SIGTERM)
        survivors = [w.wait(15) for w in workers if w.pid != holder]
    (end,) = ledger_rows(ledger, "end", slow)
    assert end[2] == "2" and int(end[3]) != holder and survivors == [0]
    report = analyse(ledger, [slow, *others], killed_pids=[holder])
    assert report.lost == [] and report.duplicates == 0, report.summary()
    assert failed_records(runtime) == {}


def test_a_tries_1_job_whose_worker_is_killed_runs_again_and_succeeds(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """A stall does not use up a try: a deploy that kills workers must not fail jobs that never failed."""
    setup = setup_factory(kind, retry_after=1)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    job = dispatch(runtime, jobs.SleepFirstAttemptOneTry(30, str(ledger)))
    first = spawn_qctl(WORK, setup.directory, name="first")
    try:
        wait_for(lambda: ledger_rows(ledger, "start", job), 30, message="the job to start")
        first.kill()
        first.wait(15)
        second = spawn_qctl(WORK, setup.directory, name="second")
        wait_for(lambda: ledger_rows(ledger, "end", job), 1 + 30, message="the job to run again")
        second.signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        if first.alive():
            first.kill()
    (end,) = ledger_rows(ledger, "end", job)
    assert end[2] == "2"  # attempts() still counts reservations
    assert failed_records(runtime) == {} and queue_size(runtime) == 0


@pytest.mark.usefixtures("worker_slots")
def test_random_kill9_loses_nothing_and_every_duplicate_is_explained(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """C-02: three workers, one SIGKILLed at random every 0.2-1.0 s, then the queue drains."""
    setup = setup_factory(kind, retry_after=2)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    rng = random.Random(int(os.environ.get("QCTL_CHAOS_SEED", "20261126")))

    def push(n: int) -> list[str]:
        return [dispatch(runtime, jobs.Sleep(0.05, str(ledger)) if i % 2 else jobs.Ok(i, str(ledger))) for i in range(n)]

    uuids = push(100)
    with MiniSupervisor([*WORK, "--tries", "0"], setup.directory, count=3) as supervisor:
        until = time.monotonic() + 8 * SCALE
        while time.monotonic() < until:  # keep them busy, so kills land mid-job
            uuids += push(15)
            time.sleep(rng.uniform(0.2, 1.0))
            supervisor.kill_random(rng)
        wait_for(lambda: queue_size(runtime) == 0, 2 + 60 * SCALE, interval=0.5, message="the queue to drain")
        statuses = supervisor.stop()
    failed = failed_records(runtime)
    report = analyse(ledger, uuids, supervisor.killed, failed)
    assert report.lost == [], report.summary()
    assert report.unexplained == [], report.summary()
    assert report.duplicates <= len(supervisor.killed), report.summary()
    assert all("max_stalls" in record.error_line for record in failed.values())  # the only way to fail here
    assert set(statuses) <= {0} and len(supervisor.killed) >= 5


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_job_finishes_it_then_exits_0(setup_factory, runtime_factory, kind, tmp_path, signum, worker_slots):  # type: ignore[no-untyped-def]
    """C-05/C-06: the running jobs (one per slot) complete, the next one does not start, exit status 0."""
    if signum == signal.SIGINT and kind != "sqlite":
        pytest.skip("SIGINT takes the same path as SIGTERM; one database is enough")
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    slow = runtime.dispatcher.bulk([jobs.Sleep(3, str(ledger)) for _ in range(worker_slots)])
    worker = spawn_qctl(WORK, setup.directory)
    wait_for(lambda: all(ledger_rows(ledger, "start", uuid) for uuid in slow), 30, message="every slot's job to start")
    dispatch(runtime, jobs.Ok(1, str(ledger)))  # once every slot is busy (slots reserving at once may pass each other's row)
    time.sleep(1)
    worker.signal(signum)
    assert worker.wait(3 + 5) == 0
    assert all(ledger_rows(ledger, "end", uuid) for uuid in slow)
    assert len(read_ledger(ledger)) == 2 * worker_slots  # the Ok never started
    assert queue_size(runtime) == 1


def test_sigterm_then_sigkill_redelivers_once(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    """C-09: stopwaitsecs ran out: the job comes back after retry_after and completes once."""
    setup = setup_factory(kind, retry_after=2)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    uuid = dispatch(runtime, jobs.SleepFirstAttempt(30, str(ledger)))
    first = spawn_qctl(WORK, setup.directory, name="first")
    wait_for(lambda: ledger_rows(ledger, "start", uuid), 30, message="the job to start")
    first.signal(signal.SIGTERM)
    time.sleep(2)
    first.kill()
    first.wait(5)
    second = spawn_qctl(WORK, setup.directory, name="second")
    try:
        wait_for(lambda: ledger_rows(ledger, "end", uuid), 2 + 20, message="the redelivered run")
    finally:
        second.signal(signal.SIGTERM)
        assert second.wait(15) == 0
    assert [row[2] for row in ledger_rows(ledger, "end", uuid)] == ["2"]
    assert queue_size(runtime) == 0 and failed_records(runtime) == {}


# --- crash points (C-03 subset, C-10) and workers that keep dying (max tries, max_stalls) -------------

@pytest.mark.parametrize(
    ("point", "ends", "failed"),
    [
        ("before_release", ["2"], False),  # died before releasing: reclaimed after retry_after
        ("after_release", ["2"], False),  # released, then died: taken at once
        ("after_handle_before_ack", ["1", "2"], False),  # at least once: ran twice
        ("after_failed_insert_before_delete", [], True),  # the failed insert is idempotent on uuid
    ],
)
def test_crash_points_leave_one_terminal_state(setup_factory, runtime_factory, kind, tmp_path, point, ends, failed):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=1)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    job = jobs.Boom(ledger=str(ledger)) if failed else jobs.Boom(times=0 if "ack" in point else 1, ledger=str(ledger))
    uuid = dispatch(runtime, job)
    env = {"QCTL_CRASHPOINT": f"{point}:1"}
    tries = "1" if failed else "3"
    with MiniSupervisor([*WORK, "--tries", tries], setup.directory, env=env, restart_env={}) as supervisor:
        if failed:
            wait_for_failed(runtime, uuid, timeout=20)
        else:
            wait_for(lambda: len(ledger_rows(ledger, "end", uuid)) == len(ends), 20, message="the job to complete")
        wait_for(lambda: queue_size(runtime) == 0, 20, message="the queue to empty")
        time.sleep(0.5)
    assert [row[2] for row in ledger_rows(ledger, "end", uuid)] == ends
    assert supervisor.statuses() == [EXIT_CRASHED]
    records = failed_records(runtime)
    assert list(records) == ([uuid] if failed else [])
    if failed:
        assert records[uuid].error_line.startswith("RuntimeError: boom on attempt 1")  # the first record stays


def test_a_redis_failed_store_gets_its_record_before_the_job_leaves_the_queue(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    """On a Redis-only config (the failed store is that Redis) a worker killed between writing the
    failed record and deleting the job leaves it queued; the next worker fails it again, and the
    record stays the first one."""
    setup = setup_factory("redis", only_connection=True, retry_after=1)
    runtime = runtime_factory(setup)
    uuid = dispatch(runtime, jobs.Boom(ledger=str(tmp_path / "ledger")))
    env = {"QCTL_CRASHPOINT": "after_failed_insert_before_delete:1"}
    with MiniSupervisor([*WORK, "--tries", "1"], setup.directory, env=env, restart_env={}) as supervisor:
        wait_for_failed(runtime, uuid, timeout=20)
        wait_for(lambda: queue_size(runtime) == 0, 20, message="the queue to empty")
    assert supervisor.statuses() == [EXIT_CRASHED]
    records = failed_records(runtime)
    assert list(records) == [uuid] and records[uuid].error_line.startswith("RuntimeError: boom on attempt 1")
    assert type(runtime.failed_store).__name__ == "RedisFailedJobStore"


@pytest.mark.parametrize(
    ("job", "flags", "reason"),
    [
        # a stall uses up no try: tries = 2 or unlimited, max_stalls (3) is what ends a job that kills its workers
        (jobs.Sleep, ["--tries", "2"], "stopped while running it 4 times, max_stalls = 3"),
        (jobs.SleepUnlimited, ["--tries", "5"], "stopped while running it 4 times, max_stalls = 3"),
    ],
)
def test_a_job_whose_workers_keep_dying_fails_instead_of_looping(setup_factory, runtime_factory, kind, tmp_path, job, flags, reason):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, retry_after=1)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    uuid = dispatch(runtime, job(0, str(ledger)))
    env = {"QCTL_CRASHPOINT": "before_handle"}  # every worker dies at its first job
    with MiniSupervisor([*WORK, *flags], setup.directory, env=env) as supervisor:
        record = wait_for_failed(runtime, uuid, timeout=40)
    assert "attempted too many times or run too long" in record.error_line and reason in record.error_line
    assert ledger_rows(ledger, "start", uuid) == [] and queue_size(runtime) == 0
    assert set(supervisor.statuses()) == {EXIT_CRASHED}
