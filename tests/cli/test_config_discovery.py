"""Config that finds itself (operator issue §1): commands run from below the project use its
qctl.toml, its SQLite file and its `app`; with no config at all, `make:job` → dispatch → `work`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import run_qctl


def test_commands_run_from_a_subdirectory_use_the_projects_config_and_files(tmp_path: Path) -> None:
    assert run_qctl(["make:job", "ShipOrder"], tmp_path).returncode == 0
    (tmp_path / "qctl.toml").write_text('app = ["jobs"]\n[connections.database]\nurl = "sqlite:///var/q.sqlite"\n')
    (tmp_path / "var").mkdir()
    dispatch = "from jobs.ship_order import ShipOrder\nprint(ShipOrder(7).dispatch())"
    pushed = subprocess.run([sys.executable, "-c", dispatch], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 0, pushed.stderr
    below = tmp_path / "jobs"
    worked = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], below)  # `jobs` imports from the project
    assert worked.returncode == 0, worked.stderr
    assert "ShipOrder is handling 7" in worked.stdout
    listed = run_qctl(["failed", "--json"], below)
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    assert not (below / "qctl.sqlite").exists() and not (below / "var").exists()
    assert (tmp_path / "var" / "q.sqlite").is_file()


def test_with_no_config_file_make_job_dispatch_and_work_just_run(tmp_path: Path) -> None:
    assert run_qctl(["make:job", "SendReport"], tmp_path).returncode == 0
    dispatch = "from jobs.send_report import SendReport\nprint(SendReport(3).dispatch())"
    pushed = subprocess.run([sys.executable, "-c", dispatch], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 0, pushed.stderr
    worked = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], tmp_path)
    assert worked.returncode == 0, worked.stderr
    assert "SendReport is handling 3" in worked.stdout
