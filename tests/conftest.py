"""Fixtures shared by the whole suite: per-test setups on real servers, runtimes, worker processes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent
for path in (str(FIXTURES), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

from qctl.db.engines import dispose_all  # noqa: E402
from qctl.db.migrations import forget_ensured  # noqa: E402
from qctl.events import EventBus  # noqa: E402
from qctl.runtime import Runtime  # noqa: E402
from tests.support.configs import TestSetup, drop_tables, make_setup  # noqa: E402
from tests.support.services import require  # noqa: E402

SetupFactory = Callable[..., TestSetup]


@pytest.fixture
def setup_factory(tmp_path: Path) -> Iterator[SetupFactory]:
    """`setup_factory(kind, **options)` writes a qctl.toml with unique tables; dropped afterwards."""
    made: list[TestSetup] = []

    def factory(kind: str, subdir: str | None = None, **options: object) -> TestSetup:
        require(kind)
        directory = tmp_path / (subdir or f"{kind}-{len(made)}")
        setup = make_setup(kind, directory, **options)  # type: ignore[arg-type]
        made.append(setup)
        return setup

    yield factory
    for setup in made:
        # A dead server already failed the test; cleaning up must not mask that.
        with contextlib.suppress(Exception):
            drop_tables(setup)
    dispose_all()
    forget_ensured()


@pytest.fixture
def runtime_factory() -> Iterator[Callable[[TestSetup], Runtime]]:
    """A Runtime for a setup, with its own event bus (listeners never leak between tests)."""
    made: list[Runtime] = []

    def factory(setup: TestSetup) -> Runtime:
        runtime = Runtime(setup.config(), events=EventBus())
        made.append(runtime)
        return runtime

    yield factory
    for runtime in made:
        runtime.close()


@pytest.fixture(params=[1, 8], ids=["1slot", "8slots"])
def worker_slots(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the test once with single-slot workers and once with `--concurrency 8` (every `qctl work`
    it starts, and the in-process `drain`)."""
    from tests.support import processes

    monkeypatch.setattr(processes, "worker_slots", request.param)
    return int(request.param)
