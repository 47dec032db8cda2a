"""Real `qctl work` processes on Redis: exactly-once drain, poison payloads, fenced late release,
wake-ups from a blocking pop, SIGTERM while blocked (E-04 small, P-01, C-04, C-07)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from qctl_testjobs import Fidelity, Ok, Sleep, SleepThenBoom, StuckInC

from tests.integration.redis_helpers import dispatch_all, key, phases, raw_client
from tests.support.processes import read_ledger, run_qctl, spawn_qctl, wait_for
from tests.support.services import REDIS_URL

pytestmark = pytest.mark.slow


def test_four_workers_drain_each_job_exactly_once(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("redis", connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = dispatch_all(runtime, [Ok(n, str(ledger)) for n in range(400)])
    workers = [spawn_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory, name=f"w{i}")
               for i in range(4)]
    for worker in workers:
        assert worker.wait(timeout=180) == 0, worker.stderr()
    ends, starts = phases(ledger, "end"), phases(ledger, "start")
    assert set(ends) == set(ids)
    assert all(count == 1 for count in ends.values()) and all(count == 1 for count in starts.values())
    assert runtime.connections.get().size("default") == 0
    assert runtime.failed_store.count() == 0


GARBAGE = [b"\x00\xffgarbage", b"{", b"[]", b"{}", b'{"uuid":"x"}', os.urandom(5 * 1024 * 1024)]


def test_garbage_entries_reach_the_failed_store_byte_exact(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """P-01: Laravel's Lua loses these silently; here each becomes one failed record, byte for byte."""
    setup = setup_factory("redis", connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    client = raw_client(REDIS_URL)
    for entry in GARBAGE:
        client.rpush(key(setup), entry)
    ledger = tmp_path / "ledger"
    [sentinel] = dispatch_all(runtime, [Ok(1, str(ledger))])
    worker = spawn_qctl(["work", "--sleep", "0.1"], setup.directory)
    try:
        wait_for(lambda: phases(ledger, "end")[sentinel] == 1, 60, message="the sentinel job")
        assert worker.alive()
        failed = runtime.failed_store.all()
        assert sorted(f.payload for f in failed) == sorted(GARBAGE)
        for record in failed:
            assert record.error_line and "\n" not in record.error_line
        assert client.llen(key(setup)) == 0
        assert client.zcard(key(setup, suffix=":reserved")) == 0
        assert client.zcard(key(setup, suffix=":delayed")) == 0
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def test_stale_holder_late_release_adds_no_copy(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """C-04: A is frozen past its lease, B takes the job over, A wakes and raises: its release is a no-op."""
    setup = setup_factory("redis", retry_after=2, connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    [job_id] = dispatch_all(runtime, [SleepThenBoom(4, times=1, ledger=str(ledger))])
    args = ["work", "--sleep", "0.2", "--tries", "3", "--timeout", "0"]
    a = spawn_qctl(args, setup.directory, name="a")
    wait_for(lambda: phases(ledger, "start")[job_id] == 1, 30, message="A starting the job")
    a.signal(signal.SIGSTOP)  # no lease renewals from A any more
    b = spawn_qctl(args, setup.directory, name="b")
    try:
        wait_for(lambda: phases(ledger, "start")[job_id] == 2, 30, message="B taking the expired job over")
        a.signal(signal.SIGCONT)
        wait_for(lambda: phases(ledger, "boom")[job_id] == 1, 30, message="A's late failure")
        wait_for(lambda: phases(ledger, "end")[job_id] == 1, 30, message="B finishing the job")
        client = raw_client(REDIS_URL)
        assert client.zcard(key(setup, suffix=":delayed")) == 0
        time.sleep(3)  # a duplicated copy would be picked up by now (backoff 0)
        assert phases(ledger, "start")[job_id] == 2
        assert runtime.connections.get().size("default") == 0
        assert runtime.failed_store.count() == 0
    finally:
        for worker in (a, b):
            worker.signal(signal.SIGCONT)
            worker.signal(signal.SIGTERM)
        assert a.wait(timeout=30) == 0 and b.wait(timeout=30) == 0


def idle_worker(setup, tmp_path: Path, queues: str = "default"):  # type: ignore[no-untyped-def]
    """A worker that has run one job and is now idle (blocked on the notify list)."""
    from qctl.runtime import Runtime

    ledger = tmp_path / "warmup"
    runtime = Runtime(setup.config())
    [warm] = dispatch_all(runtime, [Ok(0, str(ledger)).on_queue(queues.split(",")[0])])
    runtime.close()
    worker = spawn_qctl(["work", "--queue", queues, "--sleep", "60"], setup.directory)
    wait_for(lambda: phases(ledger, "end")[warm] == 1, 60, message="the warm-up job")
    time.sleep(0.5)  # let it settle into the blocking pop
    return worker


def test_blocked_worker_wakes_for_any_of_its_queues(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """block_for = 0 blocks forever and --sleep is 60 s: only the wake-up token can get these jobs run."""
    setup = setup_factory("redis", connection_options="block_for = 0")
    runtime = runtime_factory(setup)
    worker = idle_worker(setup, tmp_path, "high,low")
    ledger = tmp_path / "ledger"
    try:
        [low] = dispatch_all(runtime, [Ok(1, str(ledger)).on_queue("low")])
        wait_for(lambda: phases(ledger, "end")[low] == 1, 30, message="the job on the second queue")
        [later] = dispatch_all(runtime, [Ok(2, str(ledger)).on_queue("high").delay(1)])
        wait_for(lambda: phases(ledger, "end")[later] == 1, 30, message="the delayed job")
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def test_sigterm_stops_a_blocked_worker_at_once(setup_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """C-07: exit 0 within block_for + 2 s, no traceback."""
    setup = setup_factory("redis", connection_options="block_for = 5")
    worker = idle_worker(setup, tmp_path)
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - started < 5 + 2
    assert "Traceback" not in worker.stderr()


@pytest.mark.parametrize("control", ["restart", "max-time", "down"])
def test_a_worker_blocked_for_ever_still_honours_restart_down_and_max_time(setup_factory, runtime_factory, tmp_path: Path, control: str) -> None:  # type: ignore[no-untyped-def]
    """block_for = 0 blocks until a job comes, but an idle worker looks at its controls about every second."""
    setup = setup_factory("redis", connection_options="block_for = 0")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    # --sleep is how long a worker that is down waits before it looks again (so `up` is seen soon)
    sleep = "0.5" if control == "down" else "60"
    worker = spawn_qctl(["work", "--sleep", sleep, *(["--max-time", "2"] if control == "max-time" else [])], setup.directory,
                        env={"QCTL_HEARTBEAT_SECONDS": "0.2"})
    try:
        [warm] = dispatch_all(runtime, [Ok(0, str(ledger))])
        wait_for(lambda: phases(ledger, "end")[warm] == 1, 60, message="the warm-up job")
        if control == "down":
            assert run_qctl(["down"], setup.directory).returncode == 0
            wait_for(lambda: "down" in run_qctl(["workers"], setup.directory).stdout, 15, message="the worker to see down")
            [held] = dispatch_all(runtime, [Ok(1, str(ledger))])
            assert runtime.connections.get().size("default") == 1 and phases(ledger, "end")[held] == 0
            assert run_qctl(["up"], setup.directory).returncode == 0
            wait_for(lambda: phases(ledger, "end")[held] == 1, 15, message="the job once the queue is up")
            return
        if control == "restart":
            assert run_qctl(["restart"], setup.directory).returncode == 0
        assert worker.wait(timeout=10) == 0  # stopped by the control, not by a job or a signal
    finally:
        if worker.alive():
            worker.signal(signal.SIGTERM)
            worker.wait(timeout=30)


def test_sigterm_mid_job_finishes_and_deletes_it(setup_factory, runtime_factory, tmp_path: Path, worker_slots: int) -> None:  # type: ignore[no-untyped-def]
    """C-05: the finished jobs' deletes (one per slot), normally folded into the next reserve,
    happen on the way out."""
    setup = setup_factory("redis", connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    slow = dispatch_all(runtime, [Sleep(2, str(ledger)) for _ in range(worker_slots)])
    worker = spawn_qctl(["work", "--sleep", "0.2"], setup.directory)
    wait_for(lambda: all(phases(ledger, "start")[uuid] == 1 for uuid in slow), 30, message="every slot's slow job starting")
    [waiting] = dispatch_all(runtime, [Ok(1, str(ledger))])  # once every slot is busy
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert all(phases(ledger, "end")[uuid] == 1 for uuid in slow) and phases(ledger, "start")[waiting] == 0
    client = raw_client(REDIS_URL)
    assert client.zcard(key(setup, suffix=":reserved")) == 0  # not left to run again after retry_after
    assert runtime.connections.get().size("default") == 1


def test_long_job_keeps_its_lease_and_a_killed_workers_job_comes_back(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """retry_after = 2: a 5 s job under a live worker runs once; the job of a worker killed with -9
    is run by the other worker after its lease expires (C-01 in small)."""
    setup = setup_factory("redis", retry_after=2, connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    args = ["work", "--sleep", "0.2", "--tries", "3", "--timeout", "0"]
    a = spawn_qctl(args, setup.directory, name="a")
    b = spawn_qctl(args, setup.directory, name="b")
    try:
        [long] = dispatch_all(runtime, [Sleep(5, str(ledger))])
        wait_for(lambda: phases(ledger, "end")[long] == 1, 60, message="the long job")
        assert phases(ledger, "start")[long] == 1  # renewed, never handed out twice
        [doomed] = dispatch_all(runtime, [Sleep(3, str(ledger))])
        wait_for(lambda: phases(ledger, "start")[doomed] == 1, 30, message="the second job starting")
        runner = a if any(line[3] == str(a.pid) for line in read_ledger(ledger) if line[1] == doomed) else b
        runner.kill()
        wait_for(lambda: phases(ledger, "end")[doomed] == 1, 60, message="the killed worker's job coming back")
        attempts = [line[2] for line in read_ledger(ledger) if line[1] == doomed and line[0] == "start"]
        assert attempts == ["1", "2"]
    finally:
        for worker in (a, b):
            if worker.alive():
                worker.signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0


def test_payload_values_survive_releases(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """P-13 on Redis: arguments equal the originals, types included, after three releases."""
    values = {"empty": [], "obj": {}, "big": 2**63 + 1, "f": 0.1, "path": "a/b", "u": "žluť 🐍",
              "raw": b"\x00\xff", "t": (1, 2), "s": {3}}
    setup = setup_factory("redis", connection_options="block_for = 1")
    out = tmp_path / "fidelity.json"
    dispatch_all(runtime_factory(setup), [Fidelity(values, str(out), releases=3)])
    worker = spawn_qctl(["work", "--sleep", "0.2", "--tries", "5"], setup.directory)
    try:
        wait_for(out.exists, 60, message="the fourth attempt")
        time.sleep(0.2)
        result = json.loads(out.read_text(encoding="utf-8"))
        assert result == {"repr": repr(values), "attempts": 4}
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def test_hard_timeout_between_back_to_back_jobs(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The watchdog left armed between jobs never fires on an idle worker, and still stops a job stuck in C."""
    setup = setup_factory("redis", connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    ids = dispatch_all(runtime, [Ok(n, str(ledger)) for n in range(20)])
    worker = spawn_qctl(["work", "--sleep", "0.2", "--timeout", "1"], setup.directory)
    wait_for(lambda: set(phases(ledger, "end")) >= set(ids), 60, message="the quick jobs")
    time.sleep(1 + 2 + 1 + 3)  # past timeout + grace + re-arm slack: an armed watchdog would have fired
    assert worker.alive(), worker.stderr()
    [stuck] = dispatch_all(runtime, [StuckInC(10**11, str(ledger))])
    wait_for(lambda: phases(ledger, "start")[stuck] == 1, 30, message="the stuck job starting")
    assert worker.wait(timeout=30) != 0
    told = run_qctl(["work", "--once", "--sleep", "0"], setup.directory)  # the next worker on this host
    assert f"job {stuck} was stopped by its hard timeout" in told.stderr and "Thread" in told.stderr
