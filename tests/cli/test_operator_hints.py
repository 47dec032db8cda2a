"""The real `qctl` in a subprocess: help with no arguments, hints for Laravel names and a misplaced
--config, job module names, and a database driver that is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import run_qctl


def test_bare_qctl_prints_the_help_and_exits_0(tmp_path: Path) -> None:
    done = run_qctl([], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage: qctl" in done.stdout and "work" in done.stdout and "pause" in done.stdout


@pytest.mark.parametrize(("laravel", "qctl"), [
    ("queue:work", "work"), ("queue:listen", "listen"), ("queue:failed", "failed"), ("queue:retry", "retry"),
    ("queue:restart", "restart"), ("queue:forget", "forget"), ("queue:flush", "flush"), ("queue:clear", "clear"),
    ("queue:pause", "pause"), ("queue:continue", "continue"), ("queue:resume", "continue"),
    ("queue:prune-failed", "prune-failed"), ("queue:retry-batch", "retry-batch"), ("queue:table", "make:queue-table"),
    ("queue:failed-table", "make:failed-table"), ("queue:batches-table", "make:batches-table"),
])
def test_a_laravel_command_name_gets_a_did_you_mean_hint(tmp_path: Path, laravel: str, qctl: str) -> None:
    done = run_qctl([laravel, "--once"], tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"error: no command {laravel!r} (that is Laravel's name): did you mean `qctl {qctl}`?\n"
    assert not (tmp_path / "qctl.sqlite").exists()


def test_an_unknown_command_without_a_known_fix_keeps_clicks_error(tmp_path: Path) -> None:
    done = run_qctl(["queue:nosuch"], tmp_path)
    assert done.returncode == 2 and "No such command 'queue:nosuch'" in done.stderr


@pytest.mark.parametrize("args", [["workers", "--config", "x.toml"], ["work", "--once", "--config=x.toml"]])
def test_config_after_the_command_is_told_it_is_a_global_option(tmp_path: Path, args: list[str]) -> None:
    done = run_qctl(args, tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"error: --config is a global option: give it before the command, `qctl --config FILE {args[0]} …`\n"


def test_config_before_the_command_still_works(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.toml").write_text('[connections.database]\nurl = "sqlite:///other.sqlite"\n')
    done = run_qctl(["--config", "elsewhere.toml", "workers"], tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("name", "module"), [
    ("SendHTTPRequest", "send_http_request"), ("ProcessPodcast", "process_podcast"), ("SendSMS", "send_sms"),
    ("OAuth2Token", "o_auth2_token"),
])
def test_make_job_keeps_an_acronym_one_word(tmp_path: Path, name: str, module: str) -> None:
    done = run_qctl(["make:job", name], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "jobs" / f"{module}.py").is_file()
    assert f"class {name}(" in (tmp_path / "jobs" / f"{module}.py").read_text()


@pytest.mark.parametrize(("url", "module", "extra"), [
    ("postgresql://postgres:secret@127.0.0.1/test", "psycopg", "postgres"),
    ("mysql://root:secret@127.0.0.1/test", "pymysql", "mysql"),
])
def test_a_missing_database_driver_names_the_extra_that_installs_it(tmp_path: Path, url: str, module: str, extra: str) -> None:
    # An installation without the extra: the module is absent the way the interpreter reports it.
    absent = tmp_path / "absent"
    absent.mkdir()
    (absent / f"{module}.py").write_text(f'raise ModuleNotFoundError("No module named {module!r}", name={module!r})\n')
    (tmp_path / "qctl.toml").write_text(f'[connections.database]\nurl = "{url}"\n')
    done = run_qctl(["work", "--once"], tmp_path, env={"PYTHONPATH": str(absent)})
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"driver '{module}' is not installed: pip install 'qctl[{extra}]'"), done.stderr
    assert "secret" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
