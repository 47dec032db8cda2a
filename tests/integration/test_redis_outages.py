"""Redis outages with a private redis-server (AOF, fsync always): down at start, restarted
mid-drain, dispatch while down (O-01, O-03, O-04). The shared server is never touched."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from qctl_testjobs import Ok

from qctl.errors import DriverError
from tests.integration.redis_helpers import dispatch_all, phases
from tests.support.processes import spawn_qctl, wait_for
from tests.support.redis_server import PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.chaos]


@pytest.fixture
def private_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path / "redis-data")
    yield server
    server.stop()


DRAIN = ["work", "--sleep", "0.2", "--tries", "3", "--timeout", "0"]


def queued_on_live_redis(setup_factory, runtime_factory, private_redis, tmp_path: Path, count: int):  # type: ignore[no-untyped-def]
    """Start the private server and queue `count` Ok jobs that log to `tmp_path/ledger`; leases of 3 s."""
    private_redis.start()
    setup = setup_factory("redis", redis_url=private_redis.url, retry_after=3, connection_options="block_for = 1")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    return setup, runtime, ledger, dispatch_all(runtime, [Ok(n, str(ledger)) for n in range(count)])


def lines_with(text: str, needle: str) -> int:
    return sum(1 for line in text.splitlines() if needle in line)


def test_worker_started_before_redis_waits_and_then_works(setup_factory, runtime_factory, private_redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("redis", redis_url=private_redis.url, connection_options="block_for = 1")
    worker = spawn_qctl(["work", "--sleep", "0.2"], setup.directory)
    where = f"cannot reach Redis at 127.0.0.1:{private_redis.port}"
    try:
        wait_for(lambda: where in worker.stderr(), 30, message="the worker reporting Redis down")
        private_redis.start()
        ledger = tmp_path / "ledger"
        [job] = dispatch_all(runtime_factory(setup), [Ok(1, str(ledger))])
        wait_for(lambda: phases(ledger, "end")[job] == 1, 60, message="the job after Redis came up")
        assert worker.alive()
        stderr = worker.stderr()
        assert lines_with(stderr, where) == 1, stderr  # one line per state change, not one per retry
        assert lines_with(stderr, "connection back") == 1, stderr
        assert "Traceback" not in stderr
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0


def test_restart_mid_drain_loses_no_job(setup_factory, runtime_factory, private_redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """O-01: SHUTDOWN while two workers drain, start again on the same port and directory."""
    setup, runtime, ledger, ids = queued_on_live_redis(setup_factory, runtime_factory, private_redis, tmp_path, 1500)
    workers = [spawn_qctl(DRAIN, setup.directory, name=f"w{i}") for i in range(2)]
    try:
        wait_for(lambda: len(phases(ledger, "end")) >= 300, 120, message="300 jobs done")
        private_redis.stop()
        wait_for(lambda: all("cannot reach Redis" in w.stderr() for w in workers), 30, message="both workers noticing")
        private_redis.start()
        wait_for(lambda: set(phases(ledger, "end")) >= set(ids), 180, message="every job done")
        wait_for(lambda: runtime.connections.get().size("default") == 0, 60, message="an empty queue")
        assert all(w.alive() for w in workers)
        ends = phases(ledger, "end")
        assert sum(ends.values()) - len(ids) <= len(workers)  # only jobs in flight at the restart may repeat
        assert runtime.failed_store.count() == 0
        for worker in workers:
            stderr = worker.stderr()
            assert lines_with(stderr, "cannot reach Redis") <= 2, stderr
            assert "Traceback" not in stderr
    finally:
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(timeout=60) == 0


def test_dispatch_while_redis_is_down_raises_a_clear_error(setup_factory, runtime_factory, private_redis) -> None:  # type: ignore[no-untyped-def]
    """O-04: not a silent drop, not a raw redis-py error."""
    setup = setup_factory("redis", redis_url=private_redis.url)
    runtime = runtime_factory(setup)
    with pytest.raises(DriverError, match=f"cannot reach Redis at 127.0.0.1:{private_redis.port} \\(Connection refused\\)"):
        runtime.dispatcher.dispatch(Ok(1))
    private_redis.start()
    runtime.dispatcher.dispatch(Ok(2))
    assert runtime.connections.get().size("default") == 1


def test_connection_resets_mid_drain_lose_no_job(setup_factory, runtime_factory, private_redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """CLIENT KILL drops every worker connection (the reserve, lease and blocking ones) a few times."""
    setup, runtime, ledger, ids = queued_on_live_redis(setup_factory, runtime_factory, private_redis, tmp_path, 600)
    worker = spawn_qctl(DRAIN, setup.directory)
    admin = private_redis.client()
    try:
        for done in (100, 250, 400):
            wait_for(lambda done=done: len(phases(ledger, "end")) >= done, 120, message=f"{done} jobs done")
            admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        wait_for(lambda: set(phases(ledger, "end")) >= set(ids), 120, message="every job done")
        wait_for(lambda: runtime.connections.get().size("default") == 0, 60, message="an empty queue")
        assert worker.alive() and runtime.failed_store.count() == 0
        assert sum(phases(ledger, "end").values()) - len(ids) <= 3  # at most the job in flight at each reset
        assert "Traceback" not in worker.stderr()
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
