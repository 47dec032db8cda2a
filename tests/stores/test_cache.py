"""The cache store on every database: values, expiry, atomic add and increment.

Time moves on the store's fake clock on SQL; Redis keeps its own expiry (PX), so there the same
tests wait for real, scaled down to a twentieth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from qctl.cache.base import CacheStore
from qctl.cache.database import DatabaseCacheStore
from qctl.cache.memory import MemoryCacheStore
from qctl.cache.redis import RedisCacheStore
from qctl.errors import StoreUnavailableError
from tests.support.cache_stores import (
    Timeline,
)

if TYPE_CHECKING:  # imported by name, pytest would try to collect TestSetup
    from qctl.runtime import Runtime
    from tests.support.configs import TestSetup

def test_put_get_forget(store: CacheStore) -> None:
    assert store.get("a") is None
    store.put("a", "1")
    store.put("a", "2")
    assert store.get("a") == "2"
    assert store.forget("a") is True
    assert store.forget("a") is False
    assert store.get("a") is None


def test_values_expire(store: CacheStore, timeline: Timeline) -> None:
    store.put("short", "x", ttl=timeline.seconds(8))
    store.put("long", "y", ttl=timeline.seconds(60))
    assert store.get("short") == "x"
    timeline.wait(10)
    assert store.get("short") is None
    assert store.get("long") == "y"


def test_add_only_when_missing_or_expired(store: CacheStore, timeline: Timeline) -> None:
    assert store.add("lock", "one", ttl=timeline.seconds(8)) is True
    assert store.add("lock", "two", ttl=timeline.seconds(8)) is False
    assert store.get("lock") == "one"
    timeline.wait(10)
    assert store.add("lock", "three") is True
    assert store.get("lock") == "three"


def test_increment_counts_from_zero_and_restarts_after_expiry(store: CacheStore, timeline: Timeline) -> None:
    assert store.increment("n") == 1
    assert store.increment("n", 4) == 5
    assert store.increment("short", ttl=timeline.seconds(8)) == 1
    timeline.wait(10)
    assert store.increment("short") == 1
    assert store.get("n") == "5"


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


def test_many_reads_several_keys_in_order_in_one_call(store: CacheStore, timeline: Timeline) -> None:
    store.put("m:a", "1")
    store.put("m:short", "2", ttl=timeline.seconds(8))
    store.put("m:c", "3")
    assert store.many([]) == []
    assert store.many(["m:c", "m:missing", "m:a", "m:short"]) == ["3", None, "1", "2"]
    timeline.wait(10)
    assert store.many(["m:short", "m:a"]) == [None, "1"]


def test_the_runtime_builds_the_configured_store(kind: str, setup_factory: Callable[..., TestSetup],
                                                 runtime_factory: Callable[[TestSetup], Runtime]) -> None:
    cache = runtime_factory(setup_factory(kind)).cache
    cache.put("a", "1")
    assert cache.get("a") == "1"
    expected = {"redis": RedisCacheStore, "memory": MemoryCacheStore}.get(kind, DatabaseCacheStore)
    assert isinstance(cache, expected)


DEAD_STORES = {
    "sqlite": lambda: DatabaseCacheStore("sqlite:////nonexistent-qctl-dir/cache.sqlite"),
    "postgresql": lambda: DatabaseCacheStore("postgresql+psycopg://postgres@127.0.0.1:1/test"),
    "mariadb": lambda: DatabaseCacheStore("mysql+pymysql://root@127.0.0.1:1/test"),
    "redis": lambda: RedisCacheStore("redis://127.0.0.1:1/0"),
}
OPERATIONS: dict[str, Callable[[CacheStore], object]] = {
    "get": lambda s: s.get("a"),
    "many": lambda s: s.many(["a", "b"]),
    "increment": lambda s: s.increment("a"),
    "acquire": lambda s: s.acquire("a", "me", 10),
    "block": lambda s: s.block("a", "me", 10, timeout=0),
    "release": lambda s: s.release("a", "me"),
    "force_release": lambda s: s.force_release("a"),
    "owner": lambda s: s.owner("a"),
    "hit": lambda s: s.hit("a", 5, 1.0),
    "reset_hits": lambda s: s.reset_hits("a"),
    "hits": lambda s: s.hits("a", 1.0),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("dead", list(DEAD_STORES))
def test_an_unreachable_store_fails_in_one_line(dead: str, operation: str) -> None:
    store = DEAD_STORES[dead]()
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            OPERATIONS[operation](store)
    finally:
        store.close()
    message = str(caught.value)
    assert message.startswith("cache") and "cannot" in message
    assert "\n" not in message and "Traceback" not in message
