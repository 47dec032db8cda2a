"""`qctl make:job --path` writes only where workers can import the job from, and says what to list in `app`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qctl.cli.app import run
from tests.support.processes import run_qctl


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the project first on sys.path
    (tmp_path / "afile").write_text("")
    (tmp_path / "my-jobs").mkdir()
    (tmp_path / "weird dir").mkdir()
    return tmp_path.resolve()  # what the command sees as the current directory


def files(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*")}


@pytest.mark.parametrize(
    "path, expected",
    [
        ("jobs/__init__.py", "--path 'jobs/__init__.py': expected a package directory (like jobs), not a .py file"),
        ("afile", "--path 'afile': {project}/afile is not a directory"),
        ("afile/jobs", "--path 'afile/jobs': {project}/afile is not a directory"),
        ("my-jobs", "--path 'my-jobs': 'my-jobs' is not an importable package name"),
        ("weird dir", "--path 'weird dir': 'weird dir' is not an importable package name"),
        ("app/2fast", "--path 'app/2fast': '2fast' is not an importable package name"),
        ("app/class", "--path 'app/class': 'class' is not an importable package name"),
        ("a\nb", "--path 'a\\nb': 'a\\nb' is not an importable package name"),
        ("../elsewhere", "--path '../elsewhere' is outside the project directory {project}"),
        ("/", "--path '/' is outside the project directory {project}"),
        ("json", "--path 'json': 'json' is the name of a standard-library module, which workers would import instead"),
        ("pytest/jobs", "--path 'pytest/jobs': 'pytest' is an installed package ("),
    ],
)
def test_a_path_workers_could_not_import_from_is_one_line_exit_2_and_writes_nothing(
        project: Path, capsys: pytest.CaptureFixture[str], path: str, expected: str) -> None:
    before = files(project)
    assert run(["make:job", "SendMail", "--path", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + expected.format(project=project)), err
    assert err.count("\n") == 1
    assert files(project) == before


@pytest.mark.parametrize(
    "path, written, app_entry",
    [
        ("jobs", "jobs/send_mail.py", "jobs"),
        ("app/jobs", "app/jobs/send_mail.py", "app.jobs"),
        ("jobs/../tasks", "jobs/../tasks/send_mail.py", "tasks"),
        (".", "send_mail.py", "send_mail"),
        ("{project}/abs/jobs", "{project}/abs/jobs/send_mail.py", "abs.jobs"),
    ],
)
def test_the_hint_names_the_dotted_package_to_list_in_app(project: Path, capsys: pytest.CaptureFixture[str],
                                                           path: str, written: str, app_entry: str) -> None:
    assert run(["make:job", "SendMail", "--path", path.format(project=project)]) == 0
    out = capsys.readouterr().out
    assert f"Job written: {written.format(project=project)}\n" in out
    assert f"Workers run it once {app_entry!r} is listed in `app` in qctl.toml." in out
    assert (project / written.format(project=project)).is_file()


def test_a_class_name_whose_module_is_a_keyword_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["make:job", "If"]) == 2
    assert capsys.readouterr().err == "error: job name 'If': its module would be if.py, and 'if' is a Python keyword\n"


def test_the_listed_package_really_runs_the_job(tmp_path: Path) -> None:
    done = run_qctl(["make:job", "SendMail", "--path", "app/jobs"], tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "qctl.toml").write_text('app = ["app.jobs"]\n')
    import subprocess

    dispatch = "from app.jobs.send_mail import SendMail\nSendMail(7).dispatch()"
    pushed = subprocess.run([sys.executable, "-c", dispatch], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 0, pushed.stderr
    worked = run_qctl(["work", "--stop-when-empty", "--sleep", "0"], tmp_path)
    assert worked.returncode == 0 and "SendMail is handling 7" in worked.stdout, worked.stderr
    refused = run_qctl(["make:job", "SendMail", "--path", "app/jobs/send_mail.py"], tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr == "error: --path 'app/jobs/send_mail.py': expected a package directory (like jobs), not a .py file\n"
