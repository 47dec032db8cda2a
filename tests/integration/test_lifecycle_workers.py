"""`qctl workers`: heartbeats of real workers, psutil facts, and dead workers disappearing."""

from __future__ import annotations

import os
import socket

from qctl.cache import keys
from qctl.runtime import use
from qctl.worker.heartbeat import time_to_live
from tests.support.lifecycle import FAST_HEARTBEAT, listed_workers, started
from tests.support.processes import run_qctl, spawn_qctl, wait_for


def test_workers_lists_live_workers_and_forgets_dead_ones(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Sleep

    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        slow = Sleep(30, str(ledger)).on_queue("slow").dispatch()
    busy = spawn_qctl(["work", "--queue", "slow", "--name", "busy-one", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT)
    idle = spawn_qctl(["work", "--queue", "high,low", "--name", "idle-one", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT)
    wait_for(lambda: slow in started(ledger), 30, message="the slow job to start")
    wait_for(lambda: len(runtime.cache.items(keys.WORKER_PREFIX)) == 2, 20, message="two heartbeats")
    # the busy worker's first beat may predate its job: wait for the one that says it is working
    wait_for(lambda: {row["name"]: row["state"] for row in listed_workers(setup.directory)}.get("busy-one") == "working",
             20, interval=0.2, message="a heartbeat of the busy worker at work")

    rows = {row["name"]: row for row in listed_workers(setup.directory)}
    assert set(rows) == {"busy-one", "idle-one"}
    busy_row, idle_row = rows["busy-one"], rows["idle-one"]
    assert (busy_row["pid"], idle_row["pid"]) == (busy.pid, idle.pid)
    assert busy_row["host"] == socket.gethostname() and busy_row["connection"] == "main"
    assert busy_row["state"] == "working" and busy_row["job_id"] == slow
    assert busy_row["job_class"] == "qctl_testjobs.Sleep" and busy_row["job_queue"] == "slow"
    assert idle_row["state"] == "idle" and idle_row["job_id"] is None and idle_row["queues"] == ["high", "low"]
    for row in rows.values():
        assert row["rss_mb"] > 10 and row["cpu_percent"] >= 0 and row["uptime_seconds"] > 0
        assert row["jobs_done"] == row["jobs_failed"] == row["jobs_released"] == 0  # the busy one's job is not done yet
    table = run_qctl(["workers"], setup.directory, env={"COLUMNS": "200"})
    assert "busy-one" in table.stdout and "idle-one" in table.stdout

    busy.kill()  # -9: no chance to withdraw its heartbeat
    busy.wait()
    assert [row["name"] for row in listed_workers(setup.directory)] == ["idle-one"]  # a dead local pid is left out at once
    ttl = time_to_live(float(FAST_HEARTBEAT["QCTL_HEARTBEAT_SECONDS"]))
    wait_for(lambda: keys.worker(socket.gethostname(), busy.pid) not in runtime.cache.items(keys.WORKER_PREFIX),
             ttl + 5, interval=0.2, message="the dead worker's heartbeat to expire")

    idle.signal()
    assert idle.wait(timeout=10) == 0
    assert runtime.cache.items(keys.WORKER_PREFIX) == {}  # a worker that stops withdraws its own at once
    assert listed_workers(setup.directory) == []
    assert os.getpid() not in {row["pid"] for row in listed_workers(setup.directory)}


def test_workers_json_counts_done_failed_and_released_apart(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Boom, BoomThreeTries, Ok

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        Ok(1, str(ledger)).dispatch()
        Boom(ledger=str(ledger)).dispatch()  # fails at once (--tries 1)
        BoomThreeTries(1, str(ledger)).dispatch()  # released once, then done
    worker = spawn_qctl(["work", "--tries", "1", "--sleep", "0.2"], setup.directory, env=FAST_HEARTBEAT)
    counts = ("jobs_done", "jobs_failed", "jobs_released")

    def reported() -> tuple[int, ...] | None:
        rows = listed_workers(setup.directory)
        return tuple(rows[0][key] for key in counts) if rows else None

    wait_for(lambda: reported() == (2, 1, 1), 30, interval=0.2, message="done 2, failed 1, released 1")
    [row] = listed_workers(setup.directory)
    assert row["rss_mb"] > 10 and row["cpu_percent"] >= 0 and row["uptime_seconds"] > 0
    worker.signal()
    assert worker.wait(timeout=10) == 0, worker.stderr()
