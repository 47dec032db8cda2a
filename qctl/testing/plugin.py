"""The pytest plugin (entry point `pytest11: qctl`): fixtures `queue_fake`, `bus_fake` and `qctl_memory`.

Every fixture undoes itself in its teardown, which pytest runs whether the test passed or failed.
qctl itself is imported when a fixture is first used, so loading the plugin costs a test run nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from qctl.testing.bus_fake import BusFake
    from qctl.testing.memory import MemoryQctl
    from qctl.testing.queue_fake import QueueFake


def _on_memory_first(request: pytest.FixtureRequest) -> None:
    """A fake asked for beside `qctl_memory` is installed on the memory runtime, whatever the order."""
    if "qctl_memory" in request.fixturenames:
        request.getfixturevalue("qctl_memory")


@pytest.fixture
def queue_fake(request: pytest.FixtureRequest) -> Iterator[QueueFake]:
    """`qctl.Queue.fake()` for the test: nothing faked reaches storage; restored afterwards."""
    _on_memory_first(request)
    from qctl.testing import fake_queue

    fake = fake_queue()
    try:
        yield fake
    finally:
        fake.restore()


@pytest.fixture
def bus_fake(request: pytest.FixtureRequest) -> Iterator[BusFake]:
    """`qctl.Bus.fake()` for the test: dispatches, chains and batches recorded; restored afterwards."""
    _on_memory_first(request)
    from qctl.testing import fake_bus

    fake = fake_bus()
    try:
        yield fake
    finally:
        fake.restore()


@pytest.fixture
def qctl_memory() -> Iterator[MemoryQctl]:
    """The project's config with every queue connection on the memory driver and every store in memory,
    current for the test; `qctl_memory.work_off()` runs what was queued. The previous runtime comes back after."""
    from qctl.testing.memory import memory_qctl

    with memory_qctl() as memory:
        yield memory
