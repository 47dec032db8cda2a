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
    for number, process in enumerate(group.process_configs):
        assert shlex.split(process.command) == [
            *EXECUTABLE, "--config", str(directory / "qctl.toml"), "work", "main",
            "--queue", "high,default", "--tries", "3", "--timeout", "50", "--name", f"default-{number:02d}",
        ]  # each process its own worker name: their lines and heartbeats can be told apart
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
    assert why_unsafe(DATABASE, WorkerOptions(timeout=87.5), stopwaitsecs=88) is None
    # a job stuck in C is stopped at timeout + 2 s: that must come before the reservation lapses
    assert "--timeout 88 plus the 2 s a hard stop takes is not below retry_after (90 s)" in str(
        why_unsafe(DATABASE, WorkerOptions(timeout=88), stopwaitsecs=88))
    no_retry_after = ConnectionConfig("main", "database", "sqlite:///x", retry_after=None)
    assert why_unsafe(no_retry_after, WorkerOptions(timeout=0), stopwaitsecs=10) is None


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"user": "bob\n[program:evil]\ncommand=/bin/sh"}, "--user 'bob\\n[program:evil]\\ncommand=/bin/sh': a line break"),
        ({"user": "bob\rx"}, "--user 'bob\\rx': a line break or other control character"),
        ({"log": Path("w.log\nuser=root")}, "--log '"),
        ({"options": WorkerOptions(name="w\x00", timeout=50)}, "--name 'w\\x00': a line break"),
        ({"options": WorkerOptions(queues=("high", "low\u2028x"), timeout=50)}, "--queue 'low\\u2028x': a line break"),
        ({"options": WorkerOptions(queues=("a ;b",), timeout=50)}, "--queue 'a ;b': supervisord would cut the value at ' ;'"),
        ({"user": "bob #x"}, "--user 'bob #x': supervisord would cut the value"),
        ({"connection": ConnectionConfig("q\nx", "database", "sqlite://", retry_after=90)}, "connection name 'q\\nx': a line break"),
        ({"config_args": ("--config", "/etc/q\x1b.toml")}, "--config '/etc/q\\x1b.toml': a line break"),
        ({"executable": ("/opt/bin\t/qctl",)}, "the qctl command '/opt/bin\\t/qctl': a line break"),
    ],
)
def test_a_value_that_would_write_more_than_itself_is_refused(tmp_path: Path, changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(UsageError) as refused:
        program_for(request(tmp_path, **changes))
    assert str(refused.value).startswith(expected)
    assert "\n" not in str(refused.value)


def test_a_directory_with_a_line_break_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "app\n[program:evil]"
    directory.mkdir()
    with pytest.raises(UsageError, match="the current directory .*a line break"):
        program_for(request(directory))


def test_plain_values_with_spaces_semicolons_and_hashes_are_kept_whole(tmp_path: Path) -> None:
    options = WorkerOptions(name="w;1#2", queues=("high", "a;b"), timeout=50)
    text = render_program(program_for(request(tmp_path, options=options)))
    [group] = load_with_supervisor(text, tmp_path).process_group_configs
    argv = shlex.split(group.process_configs[0].command)
    assert argv[argv.index("--queue"):argv.index("--queue") + 2] == ["--queue", "high,a;b"]
    assert argv[argv.index("--name"):argv.index("--name") + 2] == ["--name", "w;1#2-00"]
