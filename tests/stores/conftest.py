"""Fixtures shared by the cache-store tests: a store per kind, on a fake clock where the store allows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from qctl.cache.base import CacheStore
from qctl.clock import Clock
from tests.support.cache_stores import KINDS, Timeline, fake_clock, store_maker
from tests.support.lifecycle_fakes import FakeClock

if TYPE_CHECKING:
    from tests.support.configs import TestSetup


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return fake_clock()


@pytest.fixture
def stores(kind: str, setup_factory: Callable[..., TestSetup]) -> Iterator[Callable[[Clock], CacheStore]]:
    with store_maker(setup_factory(kind)) as make:
        yield make


@pytest.fixture
def store(stores: Callable[[Clock], CacheStore], clock: FakeClock) -> CacheStore:
    return stores(clock)


@pytest.fixture
def timeline(kind: str, clock: FakeClock) -> Timeline:
    return Timeline(clock, real=kind == "redis")
