"""The memory cache and failed-job stores (test-only, process-local) on a clock the test moves."""

from __future__ import annotations

import datetime as dt

from qctl.cache.memory import MemoryCacheStore
from qctl.failed.memory import MemoryFailedJobStore
from tests.support.lifecycle_fakes import FakeClock


def test_values_expire_and_add_is_only_when_missing() -> None:
    clock = FakeClock(start=1000.0)
    store = MemoryCacheStore(clock)
    store.put("a", "1", ttl=10)
    assert store.get("a") == "1" and store.add("a", "2") is False
    clock.sleep(10)
    assert store.get("a") is None and store.add("a", "2", ttl=5) is True
    assert store.increment("n") == 1 and store.increment("n", 4) == 5
    assert store.items("") == {"a": "2", "n": "5"}
    assert store.forget("n") is True and store.forget("n") is False


def test_locks_are_owned_and_lapse() -> None:
    clock = FakeClock(start=1000.0)
    store = MemoryCacheStore(clock)
    assert store.acquire("k", "me", 5) and not store.acquire("k", "you", 5)
    assert store.acquire("k", "me", 5)  # the owner renews
    assert store.release("k", "you") is False and store.owner("k") == "me"
    clock.sleep(5)
    assert store.owner("k") is None and store.acquire("k", "you", None)
    assert store.force_release("k") is True and store.owner("k") is None
    assert store.block("k", "me", 5, timeout=0)


def test_hits_follow_the_sliding_window() -> None:
    clock = FakeClock(start=1000.0)
    store = MemoryCacheStore(clock)
    assert store.hit("h", 2, 60).allowed and store.hit("h", 2, 60).allowed
    denied = store.hit("h", 2, 60)
    assert not denied.allowed and 0 < denied.retry_after <= 60.3
    assert store.hits("h", 60) == 2
    clock.sleep(61)
    assert store.hit("h", 2, 60).allowed
    store.reset_hits("h")
    assert store.hits("h", 60) == 0


def test_failed_store_keeps_one_record_per_uuid() -> None:
    store = MemoryFailedJobStore()
    store.log("memory", "default", b"{}", "ValueError: x", "u1")
    store.log("memory", "default", b"{}", "ValueError: again", "u1")
    store.log("memory", "mail", b'{"unique":1}', "KeyError: y\x00", "u2")
    assert store.count() == 2 and store.find("u1").exception == "ValueError: x"  # type: ignore[union-attr]
    assert [r.uuid for r in store.all()] == ["u2", "u1"]
    assert [r.uuid for r in store.find_by_row_ids(1, 1)] == ["u1"]
    assert store.flush_returning(None, b"unique") == (2, [b'{"unique":1}'])
    store.log("memory", "default", b"{}", "e", "u3")
    assert store.prune(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == 1
    assert store.forget("u3") is False
