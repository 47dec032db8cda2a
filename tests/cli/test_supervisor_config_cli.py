"""`qctl supervisor:config` as users run it: output supervisord accepts, refusals that write nothing."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tests.support.lifecycle import load_with_supervisor
from tests.support.processes import run_qctl


def test_the_printed_config_is_read_by_supervisord_and_runs_this_qctl(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", retry_after=60)
    result = run_qctl(["supervisor:config", "--numprocs", "2", "--queue", "high,default", "--tries", "3",
                       "--timeout", "50", "--max-time", "3600", "--concurrency", "8"], setup.directory)
    assert result.returncode == 0, result.stderr
    [group] = load_with_supervisor(result.stdout, setup.directory).process_group_configs
    assert [p.name for p in group.process_configs] == ["qctl-worker_00", "qctl-worker_01"]
    argv = shlex.split(group.process_configs[0].command)
    assert Path(argv[0]).is_absolute() and Path(argv[0]).name == "qctl"
    assert Path(argv[0]).parent == Path(sys.executable).parent  # this installation's qctl
    assert argv[1:] == ["work", "main", "--queue", "high,default", "--max-time", "3600", "--tries", "3", "--timeout", "50",
                        "--concurrency", "8", "--name", "default-00"]
    assert group.process_configs[0].directory == str(setup.directory)
    assert group.process_configs[0].stopwaitsecs == 80


def test_output_writes_the_file(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    result = run_qctl(["supervisor:config", "--output", "workers.conf", "--program", "mailers", "--timeout", "30"], setup.directory)
    assert result.returncode == 0, result.stderr
    text = (setup.directory / "workers.conf").read_text()
    assert "[program:mailers]" in text
    assert load_with_supervisor(text, setup.directory).process_group_configs[0].name == "mailers"


def test_unsafe_settings_are_refused_in_one_line_with_exit_2_and_no_file(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", retry_after=60)
    for args, reason in [
        (["--timeout", "60"], "--timeout 60 is not below retry_after (60 s)"),
        (["--timeout", "0"], "--timeout 0 (no limit) is not below retry_after"),
        (["--timeout", "50", "--stopwaitsecs", "40"], "--stopwaitsecs 40 is below --timeout 50"),
    ]:
        result = run_qctl(["supervisor:config", *args, "--output", "refused.conf"], setup.directory)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"error: {reason}")
        assert result.stderr.count("\n") == 1 and result.stdout == ""
        assert not (setup.directory / "refused.conf").exists()


def test_a_line_break_in_a_written_value_is_refused_and_nothing_is_written(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", retry_after=60)
    for args, expected in [
        (["--user", "bob\n[program:evil]\ncommand=/bin/sh"], "error: --user 'bob\\n[program:evil]\\ncommand=/bin/sh': a line break"),
        (["--log", "w.log\nuser=root"], "error: --log '"),
        (["--name", "w\r1"], "error: --name 'w\\r1': a line break"),
        (["--queue", "high,low ;x"], "error: --queue 'low ;x': supervisord would cut the value at ' ;'"),
    ]:
        result = run_qctl(["supervisor:config", "--timeout", "30", *args, "--output", "refused.conf"], setup.directory)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
        assert not (setup.directory / "refused.conf").exists()


def test_work_warns_with_the_same_rule_supervisor_config_refuses_on(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", retry_after=30)
    refused = run_qctl(["supervisor:config", "--timeout", "60"], setup.directory)
    assert refused.returncode == 2
    worked = run_qctl(["work", "--once", "--sleep", "0", "--timeout", "60"], setup.directory)
    assert worked.returncode == 0, worked.stderr
    rule = refused.stderr.strip().removeprefix("error: ")
    assert f"warning: {rule}" in worked.stderr  # word for word
    quiet = run_qctl(["work", "--once", "--sleep", "0", "--timeout", "20"], setup.directory)
    assert "warning" not in quiet.stderr
