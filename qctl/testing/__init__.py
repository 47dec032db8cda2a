"""Test helpers: `Queue.fake()` / `Bus.fake()`, job-interaction fakes, an in-memory queue and `work_off()`.

Nothing in the library imports this package; `qctl.Queue.fake`, `qctl.Bus.fake` and the `Job`
test methods reach it when they are called. The pytest fixtures live in `qctl.testing.plugin`,
registered through the `pytest11` entry point.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qctl.testing.bus_fake import BatchedRecord, BusFake
from qctl.testing.interactions import FakeBatch, FakeJobContext
from qctl.testing.memory import (
    MemoryQctl,
    in_memory,
    memory_config,
    memory_qctl,
    memory_runtime,
    work_off,
)
from qctl.testing.queue_fake import QueueFake

__all__ = [
    "BatchedRecord",
    "BusFake",
    "FakeBatch",
    "FakeJobContext",
    "MemoryQctl",
    "QueueFake",
    "fake_bus",
    "fake_queue",
    "in_memory",
    "memory_config",
    "memory_qctl",
    "memory_runtime",
    "work_off",
]


def fake_queue(jobs: Iterable[Any] | None = None) -> QueueFake:
    """What `qctl.Queue.fake(jobs)` does, on the current runtime."""
    from qctl.runtime import current

    return QueueFake(current(), jobs)


def fake_bus(jobs: Iterable[Any] | None = None) -> BusFake:
    """What `qctl.Bus.fake(jobs)` does, on the current runtime."""
    from qctl.runtime import current

    return BusFake(current(), jobs)
