"""The cache store on every database: values, expiry, atomic add and increment."""

from __future__ import annotations

import threading
import time

import pytest

from qctl.cache.base import CacheStore

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]


@pytest.fixture(params=KINDS)
def store(request, setup_factory, runtime_factory) -> CacheStore:  # type: ignore[no-untyped-def]
    return runtime_factory(setup_factory(request.param)).cache


def test_put_get_forget(store: CacheStore) -> None:
    assert store.get("a") is None
    store.put("a", "1")
    store.put("a", "2")
    assert store.get("a") == "2"
    assert store.forget("a") is True
    assert store.forget("a") is False
    assert store.get("a") is None


def test_values_expire(store: CacheStore) -> None:
    store.put("short", "x", ttl=1)
    assert store.get("short") == "x"
    time.sleep(2.1)
    assert store.get("short") is None


def test_add_only_when_missing_or_expired(store: CacheStore) -> None:
    assert store.add("lock", "one", ttl=1) is True
    assert store.add("lock", "two", ttl=1) is False
    assert store.get("lock") == "one"
    time.sleep(2.1)
    assert store.add("lock", "three") is True
    assert store.get("lock") == "three"


def test_increment_counts_from_zero_and_restarts_after_expiry(store: CacheStore) -> None:
    assert store.increment("n") == 1
    assert store.increment("n", 4) == 5
    assert store.increment("short", ttl=1) == 1
    time.sleep(2.1)
    assert store.increment("short") == 1


def test_increment_is_atomic_across_threads(store: CacheStore) -> None:
    def bump() -> None:
        for _ in range(25):
            store.increment("shared")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("shared") == "100"


def test_items_by_prefix(store: CacheStore) -> None:
    store.put("qctl:worker:a", "1")
    store.put("qctl:worker:b", "2", ttl=60)
    store.put("qctl:workers_not", "3")
    store.put("other", "4")
    assert store.items("qctl:worker:") == {"qctl:worker:a": "1", "qctl:worker:b": "2"}
