"""What a worker prints (operator issue §2): one format for every line — a UTC timestamp, a level,
the worker's name and pid — as text or as one JSON object per line; `-q` keeps warnings and errors;
start and stop lines; `supervise` names its workers NAME-00, NAME-01, …"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
from pathlib import Path

import qctl_testjobs as jobs

from qctl.runtime import use
from tests.support.lifecycle import ends
from tests.support.processes import run_qctl, spawn_qctl, wait_for

TEXT_LINE = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) +(\S+)\[(\d+)\] \S")


def utc(stamp: str) -> dt.datetime:
    assert stamp.endswith("Z"), stamp
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_json_lines_carry_level_worker_pid_and_a_utc_timestamp(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    with use(runtime):
        ok = jobs.Ok(1).dispatch()
        boom = jobs.Boom().dispatch()
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "-v", "--log-format", "json", "--name", "w1"],
                    setup.directory)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    before = dt.datetime.now(dt.UTC)
    for line in lines:
        assert {"ts", "level", "worker", "pid", "event"} <= set(line), line
        assert line["worker"] == "w1" and isinstance(line["pid"], int)
        assert abs((before - utc(line["ts"])).total_seconds()) < 120
    own = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # the worker's own lines
    assert own[0]["event"] == "worker_started" and (own[-1]["event"], own[-1]["status"]) == ("worker_stopped", 0)
    by_job = {line["job_id"]: line for line in lines if line["event"] == "job"}
    assert by_job[ok]["status"] == "DONE" and by_job[ok]["class"] == "qctl_testjobs.Ok" and by_job[ok]["level"] == "info"
    assert by_job[boom]["status"] == "FAIL" and by_job[boom]["level"] == "error"
    assert by_job[boom]["error"].startswith("RuntimeError") and by_job[boom]["queue"] == "default"
    assert isinstance(by_job[ok]["runtime_ms"], float)


def test_text_lines_share_one_shape_and_quiet_keeps_warnings_and_errors(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", retry_after=30)
    runtime = runtime_factory(setup)
    with use(runtime):
        jobs.Ok(1).dispatch()
        boom = jobs.Boom().dispatch()
    # --timeout 60 against retry_after 30: the start warning is a line like any other
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "-v"], setup.directory)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    assert any("worker started on 'main', queues default" in line for line in lines)
    assert any("worker stopped: queue empty (exit status 0)" in line for line in lines)
    assert any(" WARNING " in line and "is not below retry_after" in line for line in lines)
    with use(runtime):
        jobs.Ok(2).dispatch()
        boom = jobs.Boom().dispatch()
    quiet = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "-v", "-q"], setup.directory)
    lines = [line for line in (quiet.stdout + quiet.stderr).splitlines() if line.strip()]
    assert lines and not any(" INFO " in line for line in lines), lines
    assert any(f"{boom} qctl_testjobs.Boom FAIL" in line for line in lines)


def test_supervise_names_its_workers_and_their_json_lines_parse(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        quick = {jobs.Ok(n, str(ledger)).dispatch() for n in range(10)}
    pool = spawn_qctl(["supervise", "--numprocs", "2", "--sleep", "0.2", "--timeout", "30", "-v", "--log-format", "json"],
                      setup.directory, name="pool")
    try:
        wait_for(lambda: set(ends(ledger)) == quick, 60, message="the pool to drain the queue")
        wait_for(lambda: pool.stdout().count('"worker_started"') >= 2, 30, message="both start lines")
    finally:
        pool.signal(signal.SIGTERM)
        assert pool.wait(timeout=20) == 0, pool.stderr()
    records = [json.loads(line) for line in pool.stdout().splitlines() if line.startswith("{")]
    assert records
    for record in records:
        assert {"ts", "level", "worker", "pid"} <= set(record) and record["ts"].endswith("Z"), record
    assert {r["worker"] for r in records if r["event"] == "worker_started"} == {"default-00", "default-01"}
    done = [r for r in records if r["event"] == "job" and r["status"] == "DONE"]
    assert {r["job_id"] for r in done} == quick
