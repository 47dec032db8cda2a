"""The real `qctl` in a subprocess: clear of an empty queue, key:generate --write, the demo's two failures."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from qctl.config import parse_key
from tests.support.processes import run_qctl


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_clear_of_a_queue_that_holds_nothing_says_so_without_asking(setup_factory, kind) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    for args in (["clear", "--queue", "nothing-here"], ["clear", "--queue", "nothing-here", "--force"]):
        done = run_qctl(args, setup.directory, input="")  # no answer given: it must not ask
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "Queue 'nothing-here' on 'main' holds no jobs: nothing to clear."


QCTL_TOML = """# the project's queues
default = "main"   # the one most jobs use
app = [
    "jobs",
]

[connections.main]
driver = "database"
url = "sqlite:///q.sqlite"
"""

PYPROJECT = """[project]
name = "shop"

[tool.qctl]
app = ["jobs"]  # our jobs

[tool.ruff]
line-length = 100
"""


def written_key(text: str, in_pyproject: bool = False) -> str:
    settings = tomllib.loads(text)
    key: str = (settings["tool"]["qctl"] if in_pyproject else settings)["key"]
    assert len(parse_key(key, "file", "key")) == 32
    return key


def test_key_generate_write_adds_one_line_to_qctl_toml_and_refuses_a_second_unless_forced(tmp_path: Path) -> None:
    config = tmp_path / "qctl.toml"
    config.write_text(QCTL_TOML)
    (tmp_path / "sub").mkdir()
    done = run_qctl(["key:generate", "--write"], tmp_path / "sub")  # found in the parent directory
    assert done.returncode == 0, done.stderr
    assert "App key written to" in done.stdout and "base64:" not in done.stdout
    text = config.read_text()
    key = written_key(text)
    assert text == QCTL_TOML.replace('    "jobs",\n]\n', f'    "jobs",\n]\nkey = "{key}"\n')

    again = run_qctl(["key:generate", "--write"], tmp_path)
    assert again.returncode == 1 and "a key is already set; --force replaces it" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and config.read_text() == text
    forced = run_qctl(["key:generate", "--write", "--force"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    new_key = written_key(config.read_text())
    assert new_key != key and config.read_text() == text.replace(key, new_key)


def test_key_generate_write_sets_the_key_in_tool_qctl_of_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_bytes(PYPROJECT.replace("\n", "\r\n").encode())  # line endings kept too
    done = run_qctl(["key:generate", "--write"], tmp_path)
    assert done.returncode == 0, done.stderr
    text = pyproject.read_bytes().decode()
    key = written_key(text, in_pyproject=True)
    assert text == PYPROJECT.replace("[tool.qctl]\n", f'[tool.qctl]\nkey = "{key}"\n').replace("\n", "\r\n")
    assert run_qctl(["key:generate", "--write"], tmp_path).returncode == 1


def test_key_generate_write_with_no_config_file_creates_qctl_toml_and_force_needs_write(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # discovery stops here
    done = run_qctl(["key:generate", "--write"], tmp_path)
    assert done.returncode == 0, done.stderr
    key = written_key((tmp_path / "qctl.toml").read_text())
    assert (tmp_path / "qctl.toml").read_text() == f'key = "{key}"\n'
    refused = run_qctl(["key:generate", "--force"], tmp_path)
    assert refused.returncode == 2 and "--force only goes with --write" in refused.stderr


@pytest.mark.parametrize("jobs", [2, 7])
def test_the_demo_fails_two_jobs_at_any_size_and_they_succeed_once_retried(tmp_path: Path, jobs: int) -> None:
    done = run_qctl(["demo", "--jobs", str(jobs)], tmp_path, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert f"Done: {jobs - 2} jobs succeeded, 2 failed." in done.stdout
    assert "`qctl demo --retried`" in done.stdout
    rows = json.loads(run_qctl(["failed", "--json"], tmp_path).stdout)
    assert len(rows) == 2 and {row["class"] for row in rows} == {"qctl.demo.SendInvoice"}
    assert run_qctl(["retry", "all"], tmp_path).returncode == 0
    retried = run_qctl(["demo", "--retried"], tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert "Done: 2 jobs succeeded, 0 failed." in retried.stdout
    assert json.loads(run_qctl(["failed", "--json"], tmp_path).stdout) == []
    assert run_qctl(["demo", "--jobs", "1"], tmp_path).returncode == 2
