"""A draining worker (--once, --stop-when-empty) that cannot reach its store exits 1 saying why,
instead of reading the outage as an empty queue and exiting 0 (operator issue §1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.processes import run_qctl

DEAD = {
    "redis": 'driver = "redis"\nurl = "redis://127.0.0.1:1/0"',
    "postgresql": 'driver = "database"\nurl = "postgresql+psycopg://postgres@127.0.0.1:1/test"',
}


@pytest.mark.parametrize("kind", sorted(DEAD))
@pytest.mark.parametrize("mode", ["--once", "--stop-when-empty"])
def test_a_drain_that_cannot_reach_its_store_exits_1_with_the_reason(tmp_path: Path, kind: str, mode: str) -> None:
    (tmp_path / "qctl.toml").write_text(
        f'default = "dead"\napp = ["qctl_testjobs"]\n\n[connections.dead]\n{DEAD[kind]}\n\n'
        f'[failed]\nurl = "sqlite:///{tmp_path / "failed.sqlite"}"\n\n[cache]\nurl = "sqlite:///{tmp_path / "cache.sqlite"}"\n',
        encoding="utf-8",
    )
    started = time.monotonic()
    done = run_qctl(["work", mode, "--sleep", "0.1"], tmp_path, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot be reached, nothing was run" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
