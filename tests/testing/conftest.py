"""Shared by the qctl.testing tests: a runtime on SQLite made current, and a clean LOG."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from qctl_testjobs import shop

from qctl.runtime import Runtime, use
from tests.support.configs import TestSetup


@pytest.fixture(autouse=True)
def clean_log() -> Iterator[None]:
    shop.LOG.clear()
    yield
    shop.LOG.clear()


@pytest.fixture
def sqlite_runtime(setup_factory: Callable[..., TestSetup], runtime_factory: Callable[[TestSetup], Runtime]) -> Iterator[Runtime]:
    """The current runtime, on a SQLite file of the test's own (real pushes land there)."""
    runtime = runtime_factory(setup_factory("sqlite"))
    with use(runtime):
        yield runtime
