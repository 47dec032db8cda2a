"""Owner locks on every cache store: contention, renewal, compare-and-delete, expiry, the cap, block()."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import redis

from qctl.cache.base import (
    FIRST_PAUSE,
    LOCK_CAP_SECONDS,
    LONGEST_PAUSE,
    CacheStore,
    keep_trying,
    lock_seconds,
)
from qctl.cache.database import DatabaseCacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from tests.support.cache_stores import SQL_KINDS, Timeline
from tests.support.lifecycle_fakes import FakeClock

if TYPE_CHECKING:
    pass


def test_a_free_lock_is_taken_and_then_contended(store: CacheStore) -> None:
    assert store.owner("report") is None
    assert store.acquire("report", "worker-1", 60) is True
    assert store.acquire("report", "worker-2", 60) is False
    assert store.owner("report") == "worker-1"
    assert store.acquire("other", "worker-2", 60) is True


def test_only_the_owner_releases_but_anyone_can_force(store: CacheStore) -> None:
    store.acquire("report", "worker-1", 60)
    assert store.release("report", "worker-2") is False
    assert store.owner("report") == "worker-1"
    assert store.release("report", "worker-1") is True
    assert store.release("report", "worker-1") is False
    assert store.owner("report") is None

    store.acquire("report", "worker-2", 60)
    assert store.force_release("report") is True
    assert store.force_release("report") is False
    assert store.acquire("report", "worker-3", 60) is True


def test_the_same_owner_renews_and_an_unrenewed_lock_expires(store: CacheStore, timeline: Timeline) -> None:
    assert store.acquire("report", "worker-1", timeline.seconds(10)) is True
    timeline.wait(6)
    assert store.acquire("report", "worker-1", timeline.seconds(10)) is True  # renewed until 16
    timeline.wait(6)
    assert store.acquire("report", "worker-2", timeline.seconds(10)) is False
    assert store.owner("report") == "worker-1"
    timeline.wait(5)
    assert store.owner("report") is None
    assert store.acquire("report", "worker-2", timeline.seconds(10)) is True
    assert store.release("report", "worker-1") is False


@pytest.mark.parametrize("kind", SQL_KINDS)
@pytest.mark.parametrize("ttl", [None, 0, -5, 10**9])
def test_sql_locks_never_outlive_the_cap(store: CacheStore, clock: FakeClock, ttl: float | None) -> None:
    assert store.acquire("report", "worker-1", ttl) is True
    clock.advance(LOCK_CAP_SECONDS - 5)
    assert store.owner("report") == "worker-1"
    clock.advance(10)
    assert store.owner("report") is None
    assert store.acquire("report", "worker-2", 60) is True


@pytest.mark.parametrize("kind", ["redis"])
@pytest.mark.parametrize("ttl", [None, 0, -5, 10**9])
def test_redis_locks_never_outlive_the_cap(store: CacheStore, ttl: float | None) -> None:
    assert store.acquire("report", "worker-1", ttl) is True
    assert store.acquire("report", "worker-1", ttl) is True  # the renewal is capped too
    client = redis.Redis.from_url(store.url)  # type: ignore[attr-defined]
    try:
        millis = client.pttl(f"{store.namespace}lock:report")  # type: ignore[attr-defined]
    finally:
        client.close()
    assert (LOCK_CAP_SECONDS - 5) * 1000 < millis <= LOCK_CAP_SECONDS * 1000


def test_block_waits_until_another_thread_releases(stores: Callable[[Clock], CacheStore]) -> None:
    store = stores(SYSTEM_CLOCK)
    store.acquire("report", "worker-1", 60)
    releaser = threading.Timer(0.3, store.release, args=("report", "worker-1"))
    started = time.monotonic()
    releaser.start()
    try:
        assert store.block("report", "worker-2", 60, timeout=5) is True
    finally:
        releaser.cancel()
    assert 0.25 <= time.monotonic() - started < 3
    assert store.owner("report") == "worker-2"


def test_block_gives_up_after_the_timeout(store: CacheStore, clock: FakeClock) -> None:
    store.acquire("report", "worker-1", 60)
    assert store.block("report", "worker-2", 60, timeout=2) is False
    assert sum(clock.slept) == pytest.approx(2)
    assert clock.slept[0] == FIRST_PAUSE
    assert store.owner("report") == "worker-1"
    assert store.block("report", "worker-1", 60, timeout=2) is True  # its own lock: no wait


def test_exactly_one_of_eight_racing_threads_takes_the_lock(stores: Callable[[Clock], CacheStore]) -> None:
    store = stores(SYSTEM_CLOCK)
    store.owner("warm-up")  # tables, connections and scripts exist before the race
    start = threading.Barrier(8)
    taken: list[str] = []

    def race(owner: str) -> None:
        start.wait()
        if store.acquire("report", owner, 60):
            taken.append(owner)

    threads = [threading.Thread(target=race, args=(f"worker-{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 1
    assert store.owner("report") == taken[0]


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_expired_lock_rows_are_pruned(store: CacheStore, clock: FakeClock) -> None:
    assert isinstance(store, DatabaseCacheStore)
    for n in range(3):
        store.acquire(f"old-{n}", "worker-1", 5)
    store.acquire("live", "worker-1", 60)
    assert store.prune_expired_locks() == 0
    clock.advance(10)
    assert store.prune_expired_locks() == 3
    assert store.owner("live") == "worker-1"


def test_a_lock_lives_for_its_ttl_up_to_the_cap() -> None:
    assert lock_seconds(30) == 30
    assert lock_seconds(0.5) == 0.5
    for ttl in (None, 0, -1, LOCK_CAP_SECONDS + 1, float("nan")):
        assert lock_seconds(ttl) == LOCK_CAP_SECONDS


def test_keep_trying_pauses_a_little_longer_each_time_and_stops_at_the_deadline() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def attempt() -> bool:
        calls.append(clock.monotonic())
        return False

    assert keep_trying(attempt, 3, clock) is False
    assert sum(clock.slept) == pytest.approx(3)
    pauses = clock.slept[:-1]  # the last one is cut short by the deadline
    assert pauses == sorted(pauses) and pauses[0] == FIRST_PAUSE and max(clock.slept) == LONGEST_PAUSE
    assert calls[-1] == pytest.approx(calls[0] + 3)

    answers = iter([False, False, True])
    assert keep_trying(lambda: next(answers), 3, FakeClock()) is True
    assert keep_trying(lambda: False, 0, FakeClock()) is False
