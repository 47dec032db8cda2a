"""`qctl monitor`: the table, QueueBusy and LongWaitDetected to the app's listeners (one that raises
is one line, the others still run), exit statuses for cron, and bad input — through the real command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from qctl.db.engines import get_engine
from tests.support.processes import run_qctl
from tests.support.services import url_for

APP = ("qctl_testjobs", "qctl_monitor_listeners")


def events_in(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb", "redis"])
def test_monitor_fires_queue_busy_over_the_max_and_stays_quiet_under_it(setup_factory, runtime_factory, tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, app=APP)
    driver = runtime_factory(setup).connections.get()
    driver.bulk([(json.dumps({"n": n}), "default", 0) for n in range(3)] + [(json.dumps({"n": 9}), "default", 600)])
    log = tmp_path / "events.log"
    env = {"QCTL_TEST_MONITOR_LOG": str(log), "COLUMNS": "120"}

    quiet = run_qctl(["monitor", "main:default,main:empty", "--max", "4"], setup.directory, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "" and events_in(log) == []
    assert "OK" in quiet.stdout and "ALERT" not in quiet.stdout

    busy = run_qctl(["monitor", "main:default,main:empty", "--max", "3"], setup.directory, env=env)
    assert busy.returncode == 0, busy.stderr
    assert events_in(log) == ["QueueBusy main default 4"]
    [line] = busy.stderr.splitlines()  # the listener that raised, in one line; the next one still ran
    assert line == ("error: listener qctl_monitor_listeners.refuses raised on QueueBusy: "
                    "RuntimeError: the pager is down")
    rows = {row["queue"]: row for row in json.loads(run_qctl(
        ["monitor", "main:default,main:empty", "--max", "3", "--json"], setup.directory).stdout)}
    assert rows["default"]["status"] == "ALERT" and rows["default"]["size"] == 4 and rows["default"]["busy"]
    assert (rows["default"]["ready"], rows["default"]["delayed"]) == (3, 1)
    assert rows["empty"]["status"] == "OK" and rows["empty"]["size"] == 0 and rows["empty"]["oldest_wait_seconds"] is None

    failing = run_qctl(["monitor", "main:default", "--max", "3", "--fail-on-alert"], setup.directory)
    assert failing.returncode == 1
    assert run_qctl(["monitor", "main:default", "--max", "10", "--fail-on-alert"], setup.directory).returncode == 0


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_monitor_fires_long_wait_detected(setup_factory, runtime_factory, tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, app=APP)
    driver = runtime_factory(setup).connections.get()
    driver.push(json.dumps({"n": 1, "pushedAt": f"{time.time() - 300:.4f}"}), "default")
    if kind == "sqlite":  # the row became available five minutes ago
        with get_engine(url_for("sqlite", setup.directory)).begin() as conn:
            conn.execute(text(f"UPDATE {setup.table('jobs')} SET available_at = available_at - 300"))
    log = tmp_path / "events.log"
    env = {"QCTL_TEST_MONITOR_LOG": str(log)}

    done = run_qctl(["monitor", "main:default", "--max-wait", "60", "--json"], setup.directory, env=env)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert row["status"] == "ALERT" and row["long_wait"] and not row["busy"] and 299 <= row["oldest_wait_seconds"] < 330
    [event] = events_in(log)
    name, connection, queue, seconds = event.split()
    assert (name, connection, queue) == ("LongWaitDetected", "main", "default") and 299 <= float(seconds) < 330
    assert run_qctl(["monitor", "main:default", "--max-wait", "600"], setup.directory, env=env).returncode == 0
    assert len(events_in(log)) == 1


@pytest.mark.parametrize("args, expected", [
    (["nosuchconn:q"], "connections.nosuchconn: no such connection"),
    (["main:"], "'main:': expected CONNECTION:QUEUE"),
    ([":default"], "':default': expected CONNECTION:QUEUE"),
    (["main:a,,main:b"], "'': expected CONNECTION:QUEUE"),
    (["sync:default"], "a sync connection holds no queue to monitor"),
    (["main:default", "--max", "-1"], "--max: expected 0 to"),
    (["main:default", "--max-wait", "nan"], "--max-wait"),
    (["main:bad\tname"], "a queue name cannot contain control characters"),
])
def test_monitor_bad_input_is_one_line_and_exit_2(setup_factory, args: list[str], expected: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", app=APP)
    done = run_qctl(["monitor", *args], setup.directory)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (setup.directory / "qctl.sqlite").exists()


def test_monitor_creates_nothing_and_a_bare_queue_is_on_the_default_connection(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", app=APP)
    done = run_qctl(["monitor", "default", "--json"], setup.directory)
    assert done.returncode == 0, done.stderr
    assert [(row["connection"], row["queue"], row["size"]) for row in json.loads(done.stdout)] == [("main", "default", 0)]
    assert not (setup.directory / "qctl.sqlite").exists()


def test_a_store_that_is_down_is_one_line_and_exit_1(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", app=APP, extra='\n[connections.down]\ndriver = "redis"\nurl = "redis://127.0.0.1:1/0"\n')
    done = run_qctl(["monitor", "main:default,down:default", "--json"], setup.directory)
    assert done.returncode == 1
    assert [row["status"] for row in json.loads(done.stdout)] == ["OK", "ERROR"]
    [line] = done.stderr.splitlines()
    assert line.startswith("error: down:default: ")
