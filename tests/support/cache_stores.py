"""Cache stores built directly on a test setup's tables (or keys), on a clock the test controls."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qctl.cache.base import CacheStore
from qctl.cache.database import DatabaseCacheStore
from qctl.cache.memory import MemoryCacheStore
from qctl.cache.redis import RedisCacheStore
from qctl.clock import Clock
from tests.support.lifecycle_fakes import FakeClock

if TYPE_CHECKING:  # imported by name, pytest would try to collect TestSetup
    from tests.support.configs import TestSetup

KINDS = ["sqlite", "postgresql", "mariadb", "redis", "memory"]
SQL_KINDS = ["sqlite", "postgresql", "mariadb"]
REDIS_SCALE = 0.05
"""Real seconds per test second on Redis."""


def open_store(setup: TestSetup, clock: Clock) -> CacheStore:
    """The setup's cache store, built directly so that it runs on `clock`."""
    config = setup.config().cache
    if config.driver == "memory":
        return MemoryCacheStore(clock)
    if config.driver == "redis":
        return RedisCacheStore(config.url, config.table, clock=clock)
    return DatabaseCacheStore(config.url, config.table, clock=clock)


@contextmanager
def store_maker(setup: TestSetup) -> Iterator[Callable[[Clock], CacheStore]]:
    """`make(clock)`: another store on the setup's tables (or keys), closed afterwards."""
    made: list[CacheStore] = []

    def make(clock: Clock) -> CacheStore:
        made.append(open_store(setup, clock))
        return made[-1]

    try:
        yield make
    finally:
        for store in made:
            store.close()


def fake_clock() -> FakeClock:
    """Half past a whole second, so SQL's whole-second expirations round the same way every run."""
    return FakeClock(start=math.floor(time.time()) + 0.5)


@dataclass
class Timeline:
    """Test seconds for one store: the fake clock moves on SQL; on Redis they pass for real, scaled down."""

    clock: FakeClock
    real: bool

    def seconds(self, units: float) -> float:
        return units * REDIS_SCALE if self.real else units

    def wait(self, units: float) -> None:
        if self.real:
            time.sleep(units * REDIS_SCALE)
        else:
            self.clock.advance(units)
