"""Helpers for the chain and batch tests: an in-process worker, and the flow ledger read back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from qctl_testjobs import flow

from qctl.runtime import Runtime, use
from qctl.worker.options import WorkerOptions
from tests.support import processes


def drain(runtime: Runtime, queues: tuple[str, ...] = (), tries: int = 1) -> int:
    """Work the default connection in this process until its queues are empty (no timeout is armed:
    a timed-out job would end the test process)."""
    options = WorkerOptions(queues=queues, stop_when_empty=True, sleep=0.05, tries=tries, timeout=0, memory=0,
                            concurrency=processes.worker_slots)
    return runtime.worker(None, options).run()


@contextmanager
def flow_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    ledger = tmp_path / "flow.ledger"
    monkeypatch.setenv(flow.LEDGER_ENV, str(ledger))
    yield ledger


def lines(ledger: Path, what: str) -> list[list[str]]:
    return [row for row in flow.read(ledger) if row[0] == what]


def tags(ledger: Path, what: str = "end") -> list[str]:
    """The step tags of one phase, in ledger order."""
    return [row[1] for row in lines(ledger, what)]


@contextmanager
def current(runtime: Runtime) -> Iterator[Runtime]:
    """Make `runtime` the process's for dispatching (without closing it afterwards)."""
    from qctl import runtime as runtime_module

    previous = runtime_module._current
    runtime_module.set_current(runtime)
    try:
        yield runtime
    finally:
        runtime_module._current = previous


__all__ = ["current", "drain", "flow_ledger", "lines", "tags", "use"]
