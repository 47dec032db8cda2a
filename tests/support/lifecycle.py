"""Helpers for the worker-lifecycle tests: reading the ledger, asking `qctl workers`."""

from __future__ import annotations

import json
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

from qctl.runtime import Runtime
from qctl.worker.registry import read_records
from tests.support.processes import read_ledger, run_qctl

FAST_HEARTBEAT = {"QCTL_HEARTBEAT_SECONDS": "0.5"}


def phases(ledger: Path, phase: str) -> list[list[str]]:
    """Ledger lines of one phase: [phase, uuid, attempt, pid, monotonic, …]."""
    return [fields for fields in read_ledger(ledger) if fields and fields[0] == phase]


def ends(ledger: Path) -> Counter[str]:
    return Counter(fields[1] for fields in phases(ledger, "end"))


def started(ledger: Path) -> set[str]:
    return {fields[1] for fields in phases(ledger, "start")}


def listed_workers(directory: Path) -> list[dict[str, Any]]:
    result = run_qctl(["workers", "--json"], directory)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def worker_states(runtime: Runtime) -> list[str]:
    """The state each live worker last reported, straight from the cache (no `qctl` process)."""
    return [record.state for record in read_records(runtime.cache)]


def load_with_supervisor(text: str, here: Path) -> Any:
    """What supervisord itself makes of a config: its sections (ValueError when it rejects the text)."""
    from supervisor.options import ServerOptions

    options = ServerOptions()
    options.configfile = str(here / "supervisord.conf")
    options.here = str(here)
    if "[supervisord]" not in text:
        text = "[supervisord]\n" + text
    return options.read_config(StringIO(text))
