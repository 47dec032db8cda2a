"""`qctl failed ID` shows one failed job whole; `--queue/--class/--since/--limit` narrow the listing in
the store; times carry their offset; reading never creates a table, nor on SQLite the file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import qctl_testjobs as jobs
from sqlalchemy import inspect

from qctl.bus.payloads import build_envelope
from qctl.runtime import Runtime
from tests.support.failed_stores import make_older
from tests.support.processes import run_qctl


def record(runtime: Runtime, job: object, queue: str = "default", error: str = "RuntimeError: boom") -> str:
    envelope = build_envelope(job, runtime.signer)  # type: ignore[arg-type]
    runtime.failed_store.log("main", queue, envelope.to_json(runtime.signer).encode(), error, envelope.uuid)
    return envelope.uuid


def test_one_failed_job_is_shown_whole(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    uuid = record(runtime, jobs.Ok(7), error="RuntimeError: boom\n\nTraceback (most recent call last):\n  File \"x.py\", line 1")
    shown = run_qctl(["failed", uuid], setup.directory)
    assert shown.returncode == 0, shown.stderr
    assert f"id:          {uuid}" in shown.stdout and "class:       qctl_testjobs.Ok" in shown.stdout
    assert "Traceback (most recent call last):" in shown.stdout and '"commandName": "qctl_testjobs:Ok"' in shown.stdout
    as_json = json.loads(run_qctl(["failed", uuid, "--json"], setup.directory).stdout)[0]
    assert as_json["exception"].startswith("RuntimeError: boom\n") and as_json["payload"]["data"]["command"]["n"] == 7
    missing = run_qctl(["failed", "nope"], setup.directory)
    assert missing.returncode == 1 and missing.stderr.strip() == "error: no failed job with id nope (see `qctl failed`)"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb", "redis-only"])
def test_the_listing_is_narrowed_in_the_store(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("redis", only_connection=True) if kind == "redis-only" else setup_factory(kind)
    runtime = runtime_factory(setup)
    old = record(runtime, jobs.Ok(1), queue="mail")
    recent_mail = record(runtime, jobs.Boom(), queue="mail")
    other = record(runtime, jobs.Ok(2), queue="default")
    make_older(runtime.failed_store, [old], hours=5)

    def ids(*args: str) -> list[str]:
        done = run_qctl(["failed", "--json", *args], setup.directory)
        assert done.returncode == 0, done.stderr
        return [row["id"] for row in json.loads(done.stdout)]

    assert ids() == [other, recent_mail, old]  # newest first
    assert ids("--queue", "mail") == [recent_mail, old]
    assert ids("--class", "qctl_testjobs.Ok") == [other, old]
    assert ids("--since", "2h") == [other, recent_mail]
    assert ids("--limit", "1") == [other]
    assert ids("--queue", "mail", "--class", "qctl_testjobs.Ok", "--since", "2h") == []
    stamp = json.loads(run_qctl(["failed", "--json"], setup.directory).stdout)[0]["failed_at"]
    assert dt.datetime.fromisoformat(stamp).utcoffset() == dt.timedelta(0)  # an offset, not a naive time
    for bad in (["--since", "soon"], ["--since", "1e400h"], ["--limit", "0"]):
        refused = run_qctl(["failed", *bad], setup.directory)
        assert refused.returncode == 2 and refused.stderr.startswith("error: "), (bad, refused.stderr)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_listings_never_create_a_table(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    for command in (["failed"], ["failed", "--json"], ["batches"], ["workers"]):
        done = run_qctl(command, setup.directory)
        assert done.returncode == 0, (command, done.stderr)
    names = set(inspect(runtime.failed_store.engine).get_table_names())  # type: ignore[attr-defined]
    assert not {name for name in names if setup.token in name}, names


def test_with_no_config_a_listing_says_so_and_creates_no_file(tmp_path: Path) -> None:
    done = run_qctl(["failed"], tmp_path)
    assert done.returncode == 0 and "No failed jobs." in done.stdout
    assert "no qctl.toml or [tool.qctl] found" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_ids_never_fold_in_a_pipe_or_on_an_80_column_terminal(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess
    import sys
    import time

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    uuid = record(runtime, jobs.Ok(1), error="RuntimeError: " + "a long message that has to wrap somewhere " * 3)
    piped = run_qctl(["failed"], setup.directory)  # not a terminal: every column whole
    assert any(uuid in line and "a long message that has to wrap somewhere " * 3 in line for line in piped.stdout.splitlines())
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    session = f"qctl-{setup.token}"
    screen = tmp_path / "screen.txt"
    command = f"{sys.executable} -m qctl failed; sleep 30"
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "fixtures")}
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "40", "-c", str(setup.directory),
                    *[part for key, value in env.items() for part in ("-e", f"{key}={value}")], command], check=True)
    try:
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline and "└" not in text:  # the table's last line: it is all on screen
            text = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
            time.sleep(0.1)
        screen.write_text(text)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "└" in text, text
    assert uuid in text, text  # on one line, copyable, although the error column folds to fit 80 columns
    assert max(len(line) for line in text.splitlines()) <= 80
