"""Rate-limit counters: the bucketed sliding window's arithmetic, then hit() on every cache store."""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from qctl.cache import limits
from qctl.cache.base import CacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from tests.support.cache_stores import SQL_KINDS
from tests.support.lifecycle_fakes import FakeClock

if TYPE_CHECKING:
    pass


def most_in_one_window(times: list[float], period: float) -> int:
    """The most of the (sorted) `times` inside any window of `period` seconds."""
    return max((bisect.bisect_right(times, t + period) - i for i, t in enumerate(times)), default=0)


def allowed_times(arrivals: list[float], limit: int, period: float) -> list[float]:
    """Feed hits to the pure window one by one, as a store would; the times of those allowed."""
    counts: limits.Counts = {}
    allowed = []
    for now in arrivals:
        hit, after = limits.count_hit(counts, now, limit, period)
        if hit.allowed:
            counts = after
            allowed.append(now)
    return allowed


# The window's arithmetic, without a store.


@pytest.mark.parametrize("limit, period", [(20, 1.0), (3, 0.5), (100, 60.0)])
def test_no_sliding_window_ever_holds_more_than_the_limit(limit: int, period: float) -> None:
    rng = random.Random(limit)
    duration = 10 * period
    arrivals = sorted(1_000_000 + rng.uniform(0, duration) for _ in range(limit * 40))
    allowed = allowed_times(arrivals, limit, period)
    assert most_in_one_window(allowed, period) <= limit
    steady_rate = limit / (period * (1 + 1 / limits.BUCKETS))
    assert len(allowed) >= 0.9 * steady_rate * duration


def test_a_burst_on_each_side_of_a_period_edge_is_held_to_the_limit() -> None:
    """The fixed window's failure: a full burst just before an edge and another just after."""
    edge = 1_000_000.0
    arrivals = [edge - 0.001 + n * 0.00001 for n in range(20)] + [edge + 0.001 + n * 0.00001 for n in range(20)]
    assert len(allowed_times(arrivals, 20, 1.0)) == 20


def test_retry_after_is_when_enough_old_buckets_leave_the_window() -> None:
    B = limits.BUCKETS
    period, start = float(B), 1_000_000.5  # buckets of one second
    counts = {1_000_000: 1, 1_000_005: 2}  # three hits: one in the first bucket, two five seconds later
    hit, _ = limits.count_hit(counts, start + 10, 3, period)
    assert hit == limits.Hit(False, 0, B - 9.5)  # the first bucket leaves at 1_000_000 + B + 1
    hit, after = limits.count_hit(counts, start + B + 0.5, 3, period)
    assert hit.allowed and hit.remaining == 0
    assert hit.retry_after == pytest.approx(5.0)  # then the two at 1_000_005 leave at 1_000_005 + B + 1
    assert after == {1_000_005: 2, 1_000_000 + B + 1: 1}


def test_stale_and_unreadable_counts_count_as_nothing() -> None:
    now, period = 1_000_000.0, 1.0
    current = limits.bucket_of(now, period)
    counts = {current - limits.BUCKETS - 1: 5, current - 3: 2, current + 10_000: 7}
    assert limits.live_counts(counts, now, period) == {current - 3: 2}
    assert limits.loads(limits.dumps(counts)) == counts
    for junk in ("", "7", "[1]", '{"a": 1}', "not json"):
        assert limits.loads(junk) == {}


@pytest.mark.parametrize("limit, period", [(0, 1.0), (-1, 1.0), (5, 0), (5, -1.0), (5, float("nan"))])
def test_a_window_without_room_or_length_is_refused(limit: int, period: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        limits.check_window(limit, period)


# hit() on every store.


def test_hits_are_allowed_up_to_the_limit_then_denied(store: CacheStore) -> None:
    results = [store.hit("api", 5, 60) for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0, 0]
    assert [r.retry_after for r in results[:4]] == [0.0] * 4
    assert 0 < results[5].retry_after <= results[4].retry_after <= 60 * (1 + 1 / limits.BUCKETS)
    assert store.hits("api", 60) == 5
    assert store.hits("other", 60) == 0
    assert store.hit("other", 5, 60).allowed


def test_reset_hits_forgets_a_key(store: CacheStore) -> None:
    for _ in range(3):
        store.hit("api", 3, 60)
    assert not store.hit("api", 3, 60).allowed
    store.reset_hits("api")
    store.reset_hits("never-hit")
    assert store.hits("api", 60) == 0
    assert store.hit("api", 3, 60) == limits.Hit(True, 2, 0.0)


@pytest.mark.parametrize("kind", SQL_KINDS)
@pytest.mark.parametrize("garbage", ["not json", '{"x": 1}', '{"1": "many"}', "[1, 2]", '{"9999999999999999999999": 1}'])
def test_an_unreadable_limiter_row_counts_as_no_hits_and_is_rewritten(store: CacheStore, garbage: str) -> None:
    store.put(limits.LIMITER_PREFIX + "api", garbage, ttl=600)
    assert store.hit("api", 3, 60) == limits.Hit(True, 2, 0.0)
    assert store.hit("api", 3, 60) == limits.Hit(True, 1, 0.0)
    assert store.hits("api", 60) == 2


def test_a_store_refuses_a_window_without_room_or_length(store: CacheStore) -> None:
    with pytest.raises(ValueError, match="at least 1 hit"):
        store.hit("api", 0, 60)
    with pytest.raises(ValueError, match="more than 0 seconds"):
        store.hit("api", 5, 0)
    with pytest.raises(ValueError, match="more than 0 seconds"):
        store.hits("api", -1)


@pytest.mark.parametrize("kind", SQL_KINDS)
def test_sql_windows_slide_on_the_store_clock(store: CacheStore, clock: FakeClock) -> None:
    period = float(limits.BUCKETS)  # buckets of one second; the fake clock starts half way through one
    for _ in range(3):
        store.hit("api", 3, period)
    assert store.hit("api", 3, period) == limits.Hit(False, 0, period + 0.5)
    clock.advance(period + 0.25)
    assert store.hit("api", 3, period) == limits.Hit(False, 0, 0.25)
    clock.advance(0.25)
    assert store.hit("api", 3, period).allowed
    assert store.hits("api", period) == 1


@pytest.mark.parametrize("kind", ["redis"])
def test_redis_windows_slide_on_the_server_clock(store: CacheStore) -> None:
    period = 0.5
    for _ in range(3):
        assert store.hit("api", 3, period).allowed
    denied = store.hit("api", 3, period)
    assert not denied.allowed and 0 < denied.retry_after <= period * (1 + 1 / limits.BUCKETS)
    time.sleep(denied.retry_after)
    deadline = time.monotonic() + 0.5
    while not (hit := store.hit("api", 3, period)).allowed and time.monotonic() < deadline:
        time.sleep(0.005)
    assert hit.allowed


def test_concurrent_hits_never_overshoot_any_sliding_window(stores: Callable[[Clock], CacheStore]) -> None:
    """4 threads hammering 20 per second for 2.5 s: no 1-second window holds more than 20, and the rate is met."""
    store = stores(SYSTEM_CLOCK)
    store.hits("burst", 1.0)  # tables and connections exist before the clock starts
    limit, period, duration = 20, 1.0, 2.5
    spans: list[tuple[float, float]] = []  # when each allowed hit surely happened: between these two
    start = threading.Barrier(4)

    def hammer() -> None:
        start.wait()
        deadline = time.monotonic() + duration
        while (before := time.monotonic()) < deadline:
            if store.hit("burst", limit, period).allowed:
                spans.append((before, time.monotonic()))
            else:
                time.sleep(0.002)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    surely_inside = max(
        sum(1 for before, after in spans if before >= opens and after <= opens + period) for opens, _ in spans
    )
    assert surely_inside <= limit
    assert len(spans) >= 0.85 * limit * duration / period


def test_a_period_shorter_than_a_microsecond_per_bucket_still_counts(store: CacheStore) -> None:
    first = store.hit("tiny", 5, 1e-9)  # stores that number buckets in 64 bits stretch it to BUCKETS µs
    assert first.allowed and first.remaining == 4
