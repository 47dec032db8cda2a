"""Job counters over the cache: counted per uuid, forgotten on failure, skipped (never fatal) when the cache is down."""

from __future__ import annotations

import logging

import pytest

from qctl.cache import keys
from qctl.errors import StoreUnavailableError
from qctl.worker.counters import COUNTER_TTL_SECONDS, CacheJobCounters


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.ttls: dict[str, float | None] = {}
        self.down = False

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        if self.down:
            raise StoreUnavailableError("cache: down")
        self.ttls.setdefault(key, ttl)
        self.values[key] = self.values.get(key, 0) + by
        return self.values[key]

    def forget(self, key: str) -> bool:
        if self.down:
            raise StoreUnavailableError("cache: down")
        return self.values.pop(key, None) is not None


def test_counts_per_uuid_with_a_one_day_ttl_and_forgets_both() -> None:
    cache = FakeCache()
    counters = CacheJobCounters(cache)  # type: ignore[arg-type]
    assert [counters.add_exception("a"), counters.add_exception("a"), counters.add_exception("b")] == [1, 2, 1]
    assert counters.add_stall("a") == 1
    assert cache.ttls[keys.job_exceptions("a")] == COUNTER_TTL_SECONDS
    counters.forget("a")
    assert set(cache.values) == {keys.job_exceptions("b")}


def test_a_cache_that_is_down_skips_the_count_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    cache = FakeCache()
    counters = CacheJobCounters(cache)  # type: ignore[arg-type]
    cache.down = True
    with caplog.at_level(logging.WARNING, logger="qctl.worker"):
        assert counters.add_exception("a") is None and counters.add_stall("a") is None
        counters.forget("a")
        cache.down = False
        assert counters.add_exception("a") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "not counted" in m]) == 1
    assert any("cache is back" in m for m in messages)
