"""supervisor:config output, read back with supervisord's own config loader, and the refusals."""

from __future__ import annotations

import getpass
import shlex
from pathlib import Path
from typing import Any

import pytest
from supervisor.datatypes import RestartUnconditionally

from qctl.config import ConnectionConfig
from qctl.errors import UsageError
from qctl.supervisor.program import PoolRequest, default_stopwaitsecs, program_for, why_unsafe
from qctl.supervisor.render import render_private_supervisord, render_program
from qctl.worker.options import WorkerOptions
from tests.support.lifecycle import load_with_supervisor

DATABASE = ConnectionConfig("main", "database", "sqlite:///x.sqlite", retry_after=90)
EXECUTABLE = ("/opt/app env/bin/qctl",)


def request(directory: Path, **changes: Any) -> PoolRequest:
    values: dict[str, Any] = {"connection": DATABASE, "options": WorkerOptions(queues=("high", "default"), tries=3, timeout=50),
                              "executable": EXECUTABLE, "directory": directory, "numprocs": 3}
    values.update(changes)
    return PoolRequest(**values)


def test_the_program_section_is_what_supervisord_reads(tmp_path: Path) -> None:
    directory = tmp_path / "my app 100%"
    directory.mkdir()
    log = tmp_path / "worker.log"
    text = render_program(program_for(request(directory, log=log, config_args=("--config", str(directory / "qctl.toml")))))
    section = load_with_supervisor(text, tmp_path)
    [group] = section.process_group_configs
    assert group.name == "qctl-worker"
    names = [p.name for p in group.process_configs]
    assert names == ["qctl-worker_00", "qctl-worker_01", "qctl-worker_02"]
    for process in group.process_configs:
        assert shlex.split(process.command) == [
            *EXECUTABLE, "--config", str(directory / "qctl.toml"), "work", "main",
            "--queue", "high,default", "--tries", "3", "--timeout", "50",
        ]
        assert process.directory == str(directory)
        assert process.autostart is True and process.autorestart is RestartUnconditionally
        assert process.stopasgroup is True and process.killasgroup is True
        assert process.uid is not None and process.redirect_stderr is True
        assert process.stdout_logfile == str(log)
        assert process.stopwaitsecs == 80
    assert f"user={getpass.getuser()}" in text


def test_program_log_user_and_stopwaitsecs_can_be_chosen(tmp_path: Path) -> None:
    chosen = request(tmp_path, program="mail-workers", numprocs=1, log=Path("logs/w.log"), stopwaitsecs=600,
                     user=getpass.getuser())
    (tmp_path / "logs").mkdir()
    [group] = load_with_supervisor(render_program(program_for(chosen)), tmp_path).process_group_configs
    [process] = group.process_configs
    assert group.name == "mail-workers" and process.name == "mail-workers_00"
    assert process.stdout_logfile == str(tmp_path / "logs" / "w.log")
    assert process.stopwaitsecs == 600


def test_the_private_supervise_config_is_a_whole_valid_config(tmp_path: Path) -> None:
    program = program_for(request(tmp_path), log="/dev/stdout", log_maxbytes="0")
    section = load_with_supervisor(render_private_supervisord(tmp_path, program), tmp_path)
    assert section.nodaemon is True
    assert section.pidfile == str(tmp_path / "supervisord.pid")
    assert [s["section"] for s in section.server_configs] == ["unix_http_server"]
    [group] = section.process_group_configs
    assert group.process_configs[0].stdout_logfile_maxbytes == 0


def test_the_default_log_sits_in_the_project_directory(tmp_path: Path) -> None:
    [group] = load_with_supervisor(render_program(program_for(request(tmp_path))), tmp_path).process_group_configs
    assert group.process_configs[0].stdout_logfile == str(tmp_path / "qctl-worker.log")


def test_a_percent_sign_in_the_log_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot take a '%'"):
        program_for(request(tmp_path / "100%"))


def test_default_stopwaitsecs_covers_the_timeout() -> None:
    assert default_stopwaitsecs(60) == 90
    assert default_stopwaitsecs(59.5) == 90
    assert default_stopwaitsecs(0) == 3600


@pytest.mark.parametrize(("changes", "expected"), [
    ({"options": WorkerOptions(timeout=90)}, "--timeout 90 is not below retry_after (90 s)"),
    ({"options": WorkerOptions(timeout=120)}, "--timeout 120 is not below retry_after (90 s)"),
    ({"options": WorkerOptions(timeout=0)}, "--timeout 0 (no limit) is not below retry_after (90 s)"),
    ({"stopwaitsecs": 59}, "--stopwaitsecs 59 is below --timeout 60"),
    ({"connection": ConnectionConfig("sync", "sync")}, "connection 'sync' uses the 'sync' driver"),
    ({"program": "bad name"}, "--program 'bad name'"),
])
def test_unsafe_pools_are_refused_with_one_line(tmp_path: Path, changes: dict[str, Any], expected: str) -> None:
    values: dict[str, Any] = {"options": WorkerOptions(timeout=60)} | changes
    with pytest.raises(UsageError) as refused:
        program_for(request(tmp_path, **values))
    assert str(refused.value).startswith(expected)
    assert "\n" not in str(refused.value)
    assert refused.value.exit_code == 2


def test_the_boundaries_that_are_allowed() -> None:
    assert why_unsafe(DATABASE, WorkerOptions(timeout=89), stopwaitsecs=89) is None
    no_retry_after = ConnectionConfig("main", "database", "sqlite:///x", retry_after=None)
    assert why_unsafe(no_retry_after, WorkerOptions(timeout=0), stopwaitsecs=10) is None
