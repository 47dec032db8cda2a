"""Unique jobs on every queue driver, the lock on the same server's cache store (U-01, U-03 and the release table)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from qctl_testjobs import guarded

from qctl import Bus
from qctl.cache import keys
from qctl.cache.base import LOCK_CAP_SECONDS
from qctl.errors import ConfigError, SerializationError
from tests.support.flows import current, drain, flow_ledger, lines, tags
from tests.support.processes import run_qctl, wait_for
from tests.support.workers import failed_records, queue_size

pytestmark = pytest.mark.usefixtures("worker_slots")  # in-process drains with one slot and with eight

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
NAME = "qctl_testjobs.guarded"


@pytest.fixture(params=KINDS)
def setup(request: pytest.FixtureRequest, setup_factory):  # type: ignore[no-untyped-def]
    return setup_factory(request.param)


@pytest.fixture
def runtime(setup, runtime_factory):  # type: ignore[no-untyped-def]
    return runtime_factory(setup)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with flow_ledger(tmp_path, monkeypatch) as path:
        yield path


def dispatch(runtime, job):  # type: ignore[no-untyped-def]
    with current(runtime):
        return job.dispatch()


def lock(cls: str, unique_id: str = "u") -> str:
    return keys.unique_job(f"{NAME}.{cls}", unique_id)


def test_a_second_dispatch_pushes_nothing_until_the_first_is_done(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    first = dispatch(runtime, guarded.Unique("a"))
    assert first is not None
    assert dispatch(runtime, guarded.Unique("b")) is None
    assert dispatch(runtime, guarded.Unique("c", key="other")) is not None  # another unique id
    assert queue_size(runtime) == 2
    assert runtime.cache.owner(lock("Unique")) == first
    drain(runtime)
    assert sorted(tags(ledger)) == ["a", "c"]
    assert runtime.cache.owner(lock("Unique")) is None  # released after success
    assert dispatch(runtime, guarded.Unique("d")) is not None


def test_eight_threads_race_and_exactly_one_is_queued(runtime) -> None:  # type: ignore[no-untyped-def]
    """U-01 (threads here; the processes version is in the chaos suite)."""
    results: list[str | None] = []
    barrier = threading.Barrier(8)

    def racer(n: int) -> None:
        barrier.wait()
        results.append(dispatch(runtime, guarded.Unique(f"r{n}", key=7)))

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r is not None]) == 1 and len(results) == 8
    assert queue_size(runtime) == 1


def test_a_plain_unique_job_holds_its_lock_while_it_runs(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.UniqueTwin("t"))
    with current(runtime):  # handle() dispatches through the process's runtime
        drain(runtime)
    assert [row[1:3] for row in lines(ledger, "twin")] == [["t", "refused"]]
    assert tags(ledger) == ["t"]


def test_until_processing_lets_go_just_before_handle(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    """U-03: a duplicate dispatched while the job runs is accepted."""
    dispatch(runtime, guarded.UniqueUntilProcessing("p"))
    assert dispatch(runtime, guarded.UniqueUntilProcessing("p2")) is None  # still queued: locked
    with current(runtime):
        drain(runtime)
    assert [row[2] for row in lines(ledger, "twin")] == ["queued"]
    assert sorted(tags(ledger)) == ["p", "p-twin"]
    assert runtime.cache.owner(lock("UniqueUntilProcessing")) is None


def test_released_after_a_final_failure_and_kept_while_released(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.UniqueOneTry("f", fail=True))
    drain(runtime)
    assert len(failed_records(runtime)) == 1
    assert runtime.cache.owner(lock("UniqueOneTry")) is None
    assert dispatch(runtime, guarded.UniqueOneTry("f2")) is not None
    # A job its middleware released stays queued, so it keeps its lock.
    limiter = keys.limiter("qctl-test-two", "unique-l", 2, 60.0)
    runtime.cache.hit(limiter, 2, 60.0), runtime.cache.hit(limiter, 2, 60.0)
    held = dispatch(runtime, guarded.UniqueLimited("l", key="l"))
    drain(runtime)
    assert "l" not in tags(ledger, "start")
    assert runtime.cache.owner(lock("UniqueLimited", "l")) == held
    assert dispatch(runtime, guarded.UniqueLimited("l2", key="l")) is None


def test_a_job_its_middleware_deleted_lets_go(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.UniqueSkipped("s"))
    drain(runtime)
    assert tags(ledger, "start") == [] and queue_size(runtime) == 0
    assert runtime.cache.owner(lock("UniqueSkipped")) is None


def test_clear_releases_the_locks_of_the_jobs_it_deletes(setup, runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.Unique("ready"))
    dispatch(runtime, guarded.Unique("later", key="later").delay(600))
    dispatch(runtime, guarded.Noted("plain"))
    result = run_qctl(["clear", "--force"], cwd=setup.directory)
    assert result.returncode == 0, result.stderr
    assert "Cleared 3 jobs" in result.stdout + result.stderr
    assert runtime.cache.owner(lock("Unique")) is None and runtime.cache.owner(lock("Unique", "later")) is None
    assert dispatch(runtime, guarded.Unique("again")) is not None


def test_a_lock_whose_job_vanished_expires_at_the_cap(runtime) -> None:  # type: ignore[no-untyped-def]
    """unique_for unset (or 0) never means for ever: the lock lapses at the cache store's cap."""
    dispatch(runtime, guarded.Unique("lost"))
    runtime.connections.get().clear("default")  # gone behind qctl's back: nobody releases the lock
    key = lock("Unique")
    assert runtime.cache.owner(key) is not None
    store = runtime.cache
    from qctl.cache.database import DatabaseCacheStore
    from qctl.clock import Clock

    if isinstance(store, DatabaseCacheStore):  # move its clock past the cap

        class Later(Clock):
            def time(self) -> float:
                return super().time() + LOCK_CAP_SECONDS + 1

        store.clock = Later()
        assert store.owner(key) is None
        assert store.acquire(key, "next", 10)
    else:  # Redis keeps the expiry itself: it is set, and no longer than the cap
        ttl = store._redis().pttl(store._lock(key))
        assert 0 < ttl <= LOCK_CAP_SECONDS * 1000


def test_unique_for_sets_the_lock_time(runtime) -> None:  # type: ignore[no-untyped-def]
    dispatch(runtime, guarded.Unique("short", for_=0.4))
    wait_for(lambda: dispatch(runtime, guarded.Unique("next")) is not None, 3, 0.1, "the lock to lapse")


def test_no_lock_inside_a_batch(runtime, ledger) -> None:  # type: ignore[no-untyped-def]
    with current(runtime):
        Bus.batch([guarded.Unique("b1"), guarded.Unique("b2")]).dispatch()
    assert queue_size(runtime) == 2 and runtime.cache.owner(lock("Unique")) is None
    drain(runtime)
    assert sorted(tags(ledger)) == ["b1", "b2"]


def test_bad_unique_options_are_clear_errors_at_dispatch(runtime) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SerializationError, match="unique_id must be a string or an int, not list"):
        dispatch(runtime, guarded.Unique("bad", key=[1, 2]))
    with pytest.raises(SerializationError, match="unique_for must be a number of seconds >= 0"):
        dispatch(runtime, guarded.Unique("bad", for_=-1))
    with pytest.raises(ConfigError, match=r"no cache store named 'locks': add a \[caches.locks\] section"):
        dispatch(runtime, guarded.UniqueVia("via"))
    assert queue_size(runtime) == 0


def test_unique_via_takes_the_lock_on_the_named_store(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", extra=f'\n[caches.locks]\nurl = "sqlite:///{tmp_path}/locks.sqlite"\n')
    runtime = runtime_factory(setup)
    first = dispatch(runtime, guarded.UniqueVia("v"))
    assert first is not None and dispatch(runtime, guarded.UniqueVia("v2")) is None
    assert runtime.cache_store("locks").owner(lock("UniqueVia")) == first
    assert runtime.cache.owner(lock("UniqueVia")) is None
    drain(runtime)
    assert runtime.cache_store("locks").owner(lock("UniqueVia")) is None


def test_forget_of_a_refused_payload_releases_the_lock_it_names(setup, runtime) -> None:  # type: ignore[no-untyped-def]
    """A payload refused before it could run (unknown class) still frees its unique id when forgotten."""
    import json

    first = dispatch(runtime, guarded.Unique("doomed"))
    driver = runtime.connections.get()
    reserved = driver.pop(("default",))
    payload = json.loads(reserved.raw)
    payload["data"]["commandName"] = "qctl_testjobs.guarded.NoSuchJob"
    reserved.delete()
    runtime.failed_store.log(driver.connection_name, "default", json.dumps(payload).encode(), "UnknownJobError: x", first)
    assert runtime.cache.owner(lock("Unique")) == first
    result = run_qctl(["forget", first], cwd=setup.directory)
    assert result.returncode == 0, result.stderr
    assert runtime.cache.owner(lock("Unique")) is None
