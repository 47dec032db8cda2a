"""The real `qctl` command in a subprocess: exit codes, one-line errors, scaffolding, the demo."""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from qctl.config import parse_key
from tests.support.processes import run_qctl


def test_version_and_help(tmp_path: Path) -> None:
    from qctl import __version__

    done = run_qctl(["--version"], tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"qctl {__version__}"
    helped = run_qctl(["--help"], tmp_path)
    assert helped.returncode == 0
    for command in ("work", "failed", "migrate", "make:job", "key:generate", "demo"):
        assert command in helped.stdout


def test_help_imports_neither_sqlalchemy_nor_redis(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from qctl.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'redis'))\n"
        "print('IMPORTED', bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "IMPORTED []" in done.stdout, done.stdout[-500:]


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[connections.q]\ndriver = "rabbit"\n', "error: qctl.toml: connections.q.driver: unknown driver 'rabbit'"),
        ('[connections.q]\ndriver = "redis"\n', "error: qctl.toml: connections.q.url: missing"),
        ('[connections.q]\ndriver = "database"\nurl = "sqlite://"\nretry_after = "x"\n',
         "error: qctl.toml: connections.q.retry_after: expected a whole number of seconds"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "qctl.toml").write_text(toml)
    done = run_qctl(["work", "--once"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith(expected)
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_bad_config_via_env_and_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.qctl]\ndefault = 3\n')
    done = run_qctl(["failed"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: pyproject.toml [tool.qctl]: default: expected a connection name")
    (tmp_path / "elsewhere.toml").write_text('[failed]\ntable = 5\n')
    done = run_qctl(["failed"], tmp_path, env={"QCTL_CONFIG": "elsewhere.toml"})
    assert done.returncode == 2 and done.stderr.startswith("error: elsewhere.toml: failed.table: expected a table name")


def test_unknown_connection_and_missing_config_file(tmp_path: Path) -> None:
    done = run_qctl(["work", "ghost", "--once"], tmp_path)
    assert done.returncode == 2
    assert "connections.ghost: no such connection" in done.stderr and "Traceback" not in done.stderr
    done = run_qctl(["--config", "nope.toml", "failed"], tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == "error: nope.toml: config file not found"


def test_verbose_shows_a_traceback_for_errors(tmp_path: Path) -> None:
    done = run_qctl(["work", "ghost", "--once", "-v"], tmp_path)
    assert done.returncode == 2 and "Traceback" in done.stderr


def test_key_generate_prints_a_usable_key(tmp_path: Path) -> None:
    done = run_qctl(["key:generate"], tmp_path)
    assert done.returncode == 0
    key = done.stdout.strip()
    assert len(parse_key(key, "stdout", "key")) == 32
    assert run_qctl(["key:generate"], tmp_path).stdout.strip() != key
    assert base64.b64decode(key[7:])


def test_make_job_writes_a_module_that_runs_as_generated(tmp_path: Path) -> None:
    done = run_qctl(["make:job", "ProcessPodcast"], tmp_path)
    assert done.returncode == 0, done.stderr
    module = tmp_path / "jobs" / "process_podcast.py"
    assert module.is_file() and (tmp_path / "jobs" / "__init__.py").is_file()
    again = run_qctl(["make:job", "ProcessPodcast"], tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert run_qctl(["make:job", "not-a-class"], tmp_path).returncode == 2
    (tmp_path / "qctl.toml").write_text('app = ["jobs"]\n')
    import subprocess

    dispatch = "from jobs.process_podcast import ProcessPodcast\nprint(ProcessPodcast(42).dispatch())"
    pushed = subprocess.run([sys.executable, "-c", dispatch], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert pushed.returncode == 0, pushed.stderr
    worked = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], tmp_path)
    assert worked.returncode == 0, worked.stderr
    assert "ProcessPodcast is handling 42 (attempt 1)" in worked.stdout


def test_migrate_creates_missing_tables(tmp_path: Path) -> None:
    done = run_qctl(["migrate"], tmp_path)
    assert done.returncode == 0, done.stderr
    for table in ("jobs", "failed_jobs", "job_batches", "cache", "cache_locks"):
        assert f"Created {table} " in done.stdout
    with sqlite3.connect(tmp_path / "qctl.sqlite") as db:
        names = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
        columns = [row[1] for row in db.execute("pragma table_info(jobs)")]
    assert {"jobs", "failed_jobs", "job_batches", "cache", "cache_locks"} <= names
    assert columns == ["id", "queue", "payload", "attempts", "reserved_at", "available_at", "created_at"]
    assert "Nothing to migrate" in run_qctl(["migrate"], tmp_path).stdout


def test_make_table_writes_sql_for_the_configured_dialect(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text(
        'default = "pg"\n[connections.pg]\ndriver = "database"\nurl = "postgresql://postgres@127.0.0.1/test"\n'
    )
    for command, table in (("make:queue-table", "jobs"), ("make:failed-table", "failed_jobs"),
                           ("make:batches-table", "job_batches")):
        done = run_qctl([command], tmp_path)
        assert done.returncode == 0, done.stderr
        written = Path(done.stdout.split("Migration written: ")[1].strip())
        sql = (tmp_path / written).read_text()
        assert f"CREATE TABLE {table}" in sql
        if table == "jobs":
            assert "BIGSERIAL" in sql and "attempts BIGINT NOT NULL" in sql


def test_make_table_writes_an_alembic_revision_when_the_app_uses_alembic(tmp_path: Path) -> None:
    pytest.importorskip("alembic")
    import subprocess

    subprocess.run([sys.executable, "-m", "alembic", "init", "alembic"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("driver://user:pass@localhost/dbname", f"sqlite:///{tmp_path}/app.sqlite"))
    done = run_qctl(["make:queue-table"], tmp_path)
    assert done.returncode == 0, done.stderr
    revision = Path(done.stdout.split("Migration written: ")[1].strip())
    assert revision.parent.name == "versions" and "jobs_table('jobs')" in revision.read_text()
    upgraded = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert upgraded.returncode == 0, upgraded.stderr
    with sqlite3.connect(tmp_path / "app.sqlite") as db:
        assert db.execute("select count(*) from sqlite_master where name = 'jobs'").fetchone() == (1,)


def test_demo_drains_its_jobs_and_shows_the_failures(tmp_path: Path) -> None:
    done = run_qctl(["demo"], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Dispatched 300 jobs" in done.stdout
    assert "Done: 298 jobs succeeded, 2 failed." in done.stdout
    assert (tmp_path / "qctl.sqlite").exists()
    listed = run_qctl(["failed", "--json"], tmp_path)
    rows = json.loads(listed.stdout)
    assert len(rows) == 2 and {row["class"] for row in rows} == {"qctl.demo.SendInvoice"}
    assert all(row["error"].startswith("ValueError: invoice") for row in rows)


def test_clear_deletes_a_queue(tmp_path: Path) -> None:
    import subprocess

    code = "import qctl\nfrom qctl.demo import ResizeImage\nfor i in range(3): ResizeImage(i, (1,)).dispatch()"
    (tmp_path / "qctl.toml").write_text('app = ["qctl.demo"]\n')
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
    refused = run_qctl(["clear"], tmp_path, input="n\n")
    assert refused.returncode == 1
    done = run_qctl(["clear", "--force"], tmp_path)
    assert done.returncode == 0 and "Cleared 3 jobs from queue 'default'" in done.stdout


def test_a_broken_app_module_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "brokenapp.py").write_text("def oops(:\n")
    (tmp_path / "qctl.toml").write_text('app = ["brokenapp"]\n')
    done = run_qctl(["work", "--once", "--sleep", "0"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: app module 'brokenapp' failed to import: SyntaxError")
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_app_module_missing_is_told_apart_from_one_whose_import_breaks(tmp_path: Path) -> None:
    (tmp_path / "needsdep.py").write_text("import qctl_no_such_dependency\n")
    (tmp_path / "qctl.toml").write_text('app = ["needsdep"]\n')
    broken = run_qctl(["work", "--once", "--sleep", "0"], tmp_path)
    assert broken.returncode == 1 and len(broken.stderr.strip().splitlines()) == 1
    assert broken.stderr.strip() == ("error: app module 'needsdep' failed to import: it imports "
                                     "'qctl_no_such_dependency', which is not installed")
    verbose = run_qctl(["work", "--once", "--sleep", "0", "-v"], tmp_path)
    assert "Traceback" in verbose.stderr and 'needsdep.py", line 1' in verbose.stderr  # the real one, with -v
    (tmp_path / "qctl.toml").write_text('app = ["notthere"]\n')
    missing = run_qctl(["work", "--once", "--sleep", "0"], tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: qctl.toml: app: no module named 'notthere' (looked on sys.path, the current directory first)"


def test_verbose_works_on_every_command_and_prints_the_traceback(tmp_path: Path) -> None:
    for args in (["failed", "nope", "-v"], ["-v", "failed", "nope"], ["forget", "nope", "--verbose"]):
        done = run_qctl(args, tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        assert "Traceback" in done.stderr and "NotFoundError: no failed job with id nope" in done.stderr, args


def test_help_placeholders_match_the_man_pages_and_flags_have_none(tmp_path: Path) -> None:
    helped = run_qctl(["work", "--help"], tmp_path, env={"COLUMNS": "160"})
    assert helped.returncode == 0
    lines = {line.split()[0]: line for line in helped.stdout.splitlines() if line.strip().startswith("--")}
    assert lines["--force"].split()[:2] == ["--force", "Work"] and lines["--once"].split()[:2] == ["--once", "Process"]
    assert lines["--timeout"].split()[1] == "SECONDS" and lines["--tries"].split()[1] == "N"
    assert lines["--queue"].split()[1] == "QUEUES"
    literal = run_qctl(["supervisor:config", "--help"], tmp_path, env={"COLUMNS": "160"}).stdout
    assert "[program:…]" in literal  # help text is literal, never read as markup
    for command in ("work", "failed", "retry", "batches", "supervisor:config", "clear"):
        text = run_qctl([command, "--help"], tmp_path, env={"COLUMNS": "160"}).stdout
        assert not any(f"<{kind}>" in text for kind in ("str", "int", "float", "bool")), (command, text)
    page = (Path(__file__).resolve().parents[2] / "man" / "qctl-work.1").read_text()
    assert "\\fB\\-\\-timeout\\fR \\fISECONDS\\fR" in page and "\\fB\\-\\-force\\fR\n" in page


def test_shell_completion_offers_the_connection_names(tmp_path: Path) -> None:
    (tmp_path / "qctl.toml").write_text('[connections.mailer]\ndriver = "sync"\n')
    done = run_qctl([], tmp_path, env={"_QCTL_COMPLETE": "complete_bash", "COMP_WORDS": "qctl work ma", "COMP_CWORD": "2"})
    assert done.stdout.split() == ["mailer"]
