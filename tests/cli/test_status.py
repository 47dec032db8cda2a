"""`qctl status`: jobs by state per connection and queue, failed counts, workers and batches in
progress, on every driver, through the real command; read-only (it creates no table, no key)."""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from qctl.db.engines import get_engine
from qctl.runtime import use
from tests.support.configs import redis_prefix
from tests.support.lifecycle import FAST_HEARTBEAT
from tests.support.processes import run_qctl, spawn_qctl, wait_for
from tests.support.services import url_for

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]


def status_rows(directory: Path, *args: str) -> list[dict[str, Any]]:
    done = run_qctl(["status", *args, "--json"], directory)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def queues_of(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["queue"]: row for row in rows if row["type"] == "queue"}


@pytest.mark.parametrize("kind", KINDS)
def test_status_counts_every_state_and_the_failed_jobs(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    with use(runtime):
        for n in range(4):
            Ok(n).dispatch()
        Ok(9).delay(600).dispatch()
        Ok(10).on_queue("mail").dispatch()
    assert runtime.connections.get().pop(["default"]) is not None
    runtime.failed_store.log("main", "mail", b"{}", "RuntimeError: boom", "0b5d6a8e-0000-4000-8000-000000000001")
    runtime.failed_store.log("main", "gone", b"{}", "RuntimeError: boom", "0b5d6a8e-0000-4000-8000-000000000002")
    store = runtime.failed_store
    two_hours_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    with store.engine.begin() as conn:  # type: ignore[attr-defined]  # this one failed two hours ago
        conn.execute(store.table.update().where(store.table.c.queue == "gone")  # type: ignore[attr-defined]
                     .values(failed_at=two_hours_ago))

    rows = status_rows(setup.directory)
    found = queues_of(rows)
    default = found["default"]
    assert (default["ready"], default["delayed"], default["reserved"], default["size"]) == (3, 1, 1, 5)
    assert default["failed"] == 0 and default["connection"] == "main" and default["workers"] == 0
    assert default["oldest_wait_seconds"] is not None and default["oldest_wait_seconds"] >= 0
    assert found["gone"]["failed"] == 1 and found["gone"]["size"] == 0  # known from the failed store alone
    assert (found["gone"]["failed_last_hour"], found["gone"]["failed_last_minute"]) == (0, 0)
    assert (found["mail"]["failed"], found["mail"]["failed_last_hour"], found["mail"]["failed_last_minute"]) == (1, 1, 1)
    if kind == "redis":  # Redis cannot list its queues cheaply: `mail` shows because of its failed job
        assert set(found) == {"default", "mail", "gone"}
    else:
        assert list(found)[:2] == ["default", "mail"]
    assert set(rows[0]) == {"type", "connection", "queue", "ready", "delayed", "reserved", "size", "failed",
                            "failed_last_hour", "failed_last_minute", "oldest_wait_seconds", "workers",
                            "processed_last_minute", "processed_last_hour"}

    only = queues_of(status_rows(setup.directory, "main", "--queue", "mail"))
    assert list(only) == ["mail"] and only["mail"]["ready"] == 1

    table = run_qctl(["status"], setup.directory, env={"COLUMNS": "160"})
    assert table.returncode == 0, table.stderr
    assert "Queues" in table.stdout and "default" in table.stdout and "No running workers." in table.stdout
    assert "No batches in progress." in table.stdout


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_status_shows_the_workers_and_the_queues_they_serve(setup_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    worker = spawn_qctl(["work", "--queue", "high,low", "--name", "watcher", "--sleep", "0.2"], setup.directory,
                        env=FAST_HEARTBEAT)
    try:
        def seen() -> bool:
            return any(row["type"] == "worker" for row in status_rows(setup.directory))

        wait_for(seen, 30, interval=0.3, message="the worker's heartbeat")
        rows = status_rows(setup.directory)
        found = queues_of(rows)
        assert found["high"]["workers"] == 1 and found["low"]["workers"] == 1 and found["default"]["workers"] == 0
        [row] = [row for row in rows if row["type"] == "worker"]
        assert (row["name"], row["pid"], row["queues"], row["connection"]) == ("watcher", worker.pid, ["high", "low"], "main")
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0


def test_status_lists_the_batches_in_progress(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    from qctl import Bus

    setup = setup_factory("postgresql")
    runtime = runtime_factory(setup)
    with use(runtime):
        batch = Bus.batch([Ok(1), Ok(2)]).name("Import").dispatch()
    [row] = [row for row in status_rows(setup.directory) if row["type"] == "batch"]
    assert row["id"] == batch.id and row["name"] == "Import" and row["pending_jobs"] == 2


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb", "redis"])
def test_status_creates_no_table_and_no_key(setup_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    rows = status_rows(setup.directory)
    assert [(row["queue"], row["size"]) for row in rows] == [("default", 0)]
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(url_for("redis", setup.directory))
        assert list(client.scan_iter(match=f"{redis_prefix(setup)}*")) == []
        client.close()
    if kind in ("sqlite", "redis"):  # the failed, batch and cache stores of these setups are on SQLite
        assert not (setup.directory / "qctl.sqlite").exists()
        return
    engine = get_engine(url_for(kind, setup.directory))
    names = set(inspect(engine).get_table_names())
    assert not {name for name in names if setup.token in name}


def test_text_from_the_stores_is_escaped(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    runtime.failed_store.log("main", "evil\x1b[31m", b"{}", "x", "0b5d6a8e-0000-4000-8000-000000000003")
    done = run_qctl(["status"], setup.directory, env={"COLUMNS": "160"})
    assert done.returncode == 0 and "\x1b" not in done.stdout and "evil\\x1b[31m" in done.stdout


def test_status_bad_input_is_one_line_and_exit_2(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    for args, expected in ((["nosuchconn"], "connections.nosuchconn: no such connection"),
                           (["sync"], "a sync connection holds no queue to inspect"),
                           (["--queue", ","], "--queue: expected one or more queue names")):
        done = run_qctl(["status", *args], setup.directory)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_store_that_is_down_is_one_line_and_exit_1(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", extra='\n[connections.down]\ndriver = "redis"\nurl = "redis://127.0.0.1:1/0"\n')
    done = run_qctl(["status", "--json"], setup.directory)
    assert done.returncode == 1
    assert [line for line in done.stderr.splitlines() if line.startswith("error: connection 'down'")]
    assert [row["queue"] for row in json.loads(done.stdout)] == ["default"]  # the rest is still shown


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_clear_says_how_many_it_deleted_per_state(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    with use(runtime):
        for n in range(3):
            Ok(n).dispatch()
        Ok(9).delay(600).dispatch()
    assert runtime.connections.get().pop(["default"]) is not None
    done = run_qctl(["clear", "--force"], setup.directory)
    assert done.returncode == 0, done.stderr
    assert "Cleared 4 jobs from queue 'default' on 'main' (2 ready, 1 delayed, 1 reserved)." in done.stdout


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_migrate_adds_the_state_index_to_a_table_made_without_it(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime_factory(setup).connections.get().push("{}", "default")  # creates the table on first use
    engine = get_engine(url_for(kind, setup.directory))
    table, index = setup.table("jobs"), f"{setup.table('jobs')}_queue_state_index"
    with engine.begin() as conn:  # as a table made by an older qctl
        conn.execute(text(f"DROP INDEX {index}" + (f" ON {table}" if kind == "mariadb" else "")))
    done = run_qctl(["migrate"], setup.directory)
    assert done.returncode == 0 and f"Created {index} in" in done.stdout, done.stdout + done.stderr
    assert index in {found["name"] for found in inspect(engine).get_indexes(table)}
    assert "Nothing to migrate" in run_qctl(["migrate"], setup.directory).stdout


def test_status_shows_the_jobs_processed_from_the_metrics(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory("redis")
    with use(runtime_factory(setup)):
        for n in range(4):
            Ok(n).dispatch()
    worker = spawn_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory)
    assert worker.wait(60) == 0, worker.stderr()
    default = queues_of(status_rows(setup.directory))["default"]
    assert (default["processed_last_minute"], default["processed_last_hour"], default["size"]) == (4, 4, 0)
    off = setup_factory("sqlite", extra="\n[metrics]\nenabled = false\n")
    row = queues_of(status_rows(off.directory))["default"]
    assert row["processed_last_minute"] is None and row["processed_last_hour"] is None
