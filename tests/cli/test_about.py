"""`qctl about` in a subprocess: the config found, connections and stores with masked URLs, versions,
and which servers answer — without creating anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.processes import run_qctl


def about(directory: Path) -> dict:  # type: ignore[type-arg]
    done = run_qctl(["about", "--json"], directory)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb", "redis"])
def test_about_names_the_file_the_connection_the_stores_and_reaches_the_servers(setup_factory, kind) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    facts = about(setup.directory)
    assert facts["config"] == "qctl.toml" and facts["config_directory"] == str(setup.directory)
    assert facts["app"] == ["qctl_testjobs"] and facts["key_set"] is False and facts["default_connection"] == "main"
    [main] = [c for c in facts["connections"] if c["name"] == "main"]
    assert main["driver"] == ("redis" if kind == "redis" else "database") and main["default"] is True
    assert facts["stores"]["failed"]["table"] == setup.table("failed_jobs")
    assert facts["versions"]["qctl"] and facts["versions"]["SQLAlchemy"] and facts["versions"]["redis-py"]
    servers = {server["url"]: server for server in facts["servers"]}
    assert main["url"] in servers and servers[main["url"]]["reachable"] is True, servers
    expected = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis"}[kind]
    assert servers[main["url"]]["detail"].startswith(expected)
    text = run_qctl(["about"], setup.directory)
    assert text.returncode == 0 and "config      qctl.toml" in text.stdout and "servers" in text.stdout


def test_about_masks_passwords_says_which_server_is_down_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "qctl.toml").write_text(
        'key = "base64:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="\n'
        '[connections.pg]\ndriver = "database"\nurl = "postgresql://postgres:hunter2@127.0.0.1:5432/test"\n'
        '[connections.gone]\ndriver = "redis"\nurl = "redis://:hunter3@127.0.0.1:1/0"\n'
    )
    facts = about(tmp_path)
    text = run_qctl(["about"], tmp_path).stdout
    for shown in (json.dumps(facts), text):
        assert "hunter2" not in shown and "hunter3" not in shown
    assert facts["key_set"] is True
    servers = {server["url"]: server for server in facts["servers"]}
    assert servers["postgresql://postgres:***@127.0.0.1:5432/test"]["reachable"] is True
    gone = servers["redis://:***@127.0.0.1:1/0"]
    assert gone["reachable"] is False and "Connection refused" in gone["detail"]
    sqlite = next(server for url, server in servers.items() if url.startswith("sqlite"))
    assert "does not exist yet" in sqlite["detail"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "qctl.toml"]  # no database file was created


def test_about_with_no_config_file_says_built_in_defaults(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    facts = about(tmp_path)
    assert facts["config"] == "built-in defaults" and facts["config_directory"] is None
    assert "config      built-in defaults" in run_qctl(["about"], tmp_path).stdout
