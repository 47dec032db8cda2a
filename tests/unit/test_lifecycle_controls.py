"""Restart stamp, maintenance flag and the throttle that keeps them out of the hot loop (no servers)."""

from __future__ import annotations

from qctl.cache import keys
from qctl.worker.controls import (
    CacheControls,
    continue_queue,
    enter_maintenance,
    leave_maintenance,
    maintenance_since,
    pause_queue,
    paused_queues,
    paused_since,
    request_restart,
)
from qctl.worker.throttle import Throttle
from tests.support.lifecycle_fakes import FakeClock, MemoryCache


def test_throttle_is_due_first_then_once_per_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(1.0, clock)
    assert throttle.due() is True
    assert throttle.due() is False
    clock.advance(0.99)
    assert throttle.due() is False
    clock.advance(0.01)
    assert throttle.due() is True
    assert throttle.due() is False


def test_a_worker_restarts_only_when_the_stamp_differs_from_the_one_it_started_with() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    request_restart(cache, clock)  # an old restart, before this worker started
    controls = CacheControls(cache, clock)
    clock.advance(5)
    assert controls.restart_requested() is False
    clock.advance(1)
    request_restart(cache, clock)
    clock.advance(1)
    assert controls.restart_requested() is True
    assert CacheControls(cache, clock).restart_requested() is False  # a worker started afterwards keeps going


def test_a_first_restart_ever_is_seen_by_a_worker_that_started_with_none() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    controls = CacheControls(cache, clock)
    assert cache.get(keys.RESTART) is None
    request_restart(cache, clock)
    clock.advance(1)
    assert controls.restart_requested() is True


def test_flags_are_read_at_most_once_a_second_however_often_the_loop_asks() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    controls = CacheControls(cache, clock, connection="main", queues=("high", "default"))
    reads_at_start = cache.reads
    for _ in range(10_000):
        controls.restart_requested()
        controls.is_down()
        controls.paused_queues()
        clock.advance(0.0001)  # 10,000 loop turns in one second
    assert cache.reads - reads_at_start <= 2  # every flag in one call, at most two refreshes in that second


def test_maintenance_mode_is_seen_and_cleared() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    controls = CacheControls(cache, clock)
    assert controls.is_down() is False
    assert enter_maintenance(cache, clock) is True
    assert enter_maintenance(cache, clock) is False  # already down: the first time is kept
    assert maintenance_since(cache) == clock.time()
    clock.advance(1)
    assert controls.is_down() is True
    assert leave_maintenance(cache) is True
    assert leave_maintenance(cache) is False
    clock.advance(1)
    assert controls.is_down() is False
    assert maintenance_since(cache) is None


def test_an_unreachable_cache_keeps_the_last_flags_and_never_restarts_by_itself() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    enter_maintenance(cache, clock)
    request_restart(cache, clock)
    cache.down = True
    controls = CacheControls(cache, clock)  # could not read the stamp at start
    assert controls.restart_requested() is False
    cache.down = False
    clock.advance(1)
    assert controls.restart_requested() is False  # the first stamp it reads becomes its baseline
    assert controls.is_down() is True
    cache.down = True
    clock.advance(1)
    assert controls.is_down() is True  # last known value stands during the outage
    cache.down = False
    clock.advance(1)
    request_restart(cache, clock)
    assert controls.restart_requested() is True


def test_paused_queues_are_seen_per_connection_and_the_set_keeps_its_identity_until_it_changes() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock)
    controls = CacheControls(cache, clock, connection="main", queues=("high", "default"))
    nothing = controls.paused_queues()
    assert nothing == frozenset()
    assert pause_queue(cache, "main", "high", clock) is True
    assert pause_queue(cache, "main", "high", clock) is False  # already paused: the first time is kept
    assert pause_queue(cache, "other", "default", clock) is True  # another connection's queue of that name
    assert paused_since(cache, "main", "high") == clock.time()
    assert controls.paused_queues() is nothing  # not read again within the second
    clock.advance(1)
    paused = controls.paused_queues()
    assert paused == {"high"}
    clock.advance(1)
    assert controls.paused_queues() is paused  # unchanged: the worker need not rebuild its queue list
    assert [(p.connection, p.queue) for p in paused_queues(cache)] == [("main", "high"), ("other", "default")]
    assert continue_queue(cache, "main", "high") is True
    assert continue_queue(cache, "main", "high") is False
    clock.advance(1)
    assert controls.paused_queues() == frozenset()
    assert paused_since(cache, "main", "high") is None
