"""`qctl failed / retry / forget / flush / prune-failed` as users run them (real processes, real databases)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import qctl_testjobs as jobs

from qctl.bus.payloads import build_envelope
from qctl.jobs.job import Job
from qctl.payload.signing import generate_key
from qctl.runtime import Runtime
from tests.support.failed_stores import make_older
from tests.support.processes import read_ledger, run_qctl

if TYPE_CHECKING:
    from tests.support.configs import TestSetup

KINDS = ["sqlite", "postgresql", "mariadb", "redis", "redis-only"]
STORE_KINDS = ["sqlite", "redis-only"]
"""`redis-only`: a Redis connection and no store section, so the failed store (and the cache) is that Redis."""


def setup_for(setup_factory, kind: str, **options: object) -> TestSetup:  # type: ignore[no-untyped-def]
    if kind == "redis-only":
        return setup_factory("redis", only_connection=True, **options)  # type: ignore[no-any-return]
    return setup_factory(kind, **options)  # type: ignore[no-any-return]


def record_failure(runtime: Runtime, job: Job, queue: str = "default", error: str = "RuntimeError: boom") -> str:
    """Put a job straight into the failed store, as a worker would after its last attempt."""
    envelope = build_envelope(job, runtime.signer)
    runtime.failed_store.log("main", queue, envelope.to_json(runtime.signer).encode(), error, envelope.uuid)
    return envelope.uuid


def failed_ids(setup_dir: Path) -> list[str]:
    result = run_qctl(["failed", "--json"], setup_dir)
    assert result.returncode == 0, result.stderr
    return [row["id"] for row in json.loads(result.stdout)]


@pytest.mark.parametrize("kind", KINDS)
def test_retry_pushes_back_onto_the_original_queue_and_attempts_start_again(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_for(setup_factory, kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    chosen = record_failure(runtime, jobs.Ok(7, str(ledger)), queue="podcasts")
    other = record_failure(runtime, jobs.Ok(8, str(ledger)), queue="podcasts")

    result = run_qctl(["retry", chosen], setup.directory)
    assert result.returncode == 0, result.stderr
    assert f"Retried {chosen} onto main:podcasts." in result.stdout
    assert failed_ids(setup.directory) == [other]
    driver = runtime.connections.get()
    assert driver.size("podcasts") == 1 and driver.size("default") == 0

    worked = run_qctl(["work", "--queue", "podcasts", "--stop-when-empty", "--sleep", "0.1"], setup.directory)
    assert worked.returncode == 0, worked.stderr
    assert [(row[0], row[1], row[2]) for row in read_ledger(ledger)] == [("start", chosen, "1"), ("end", chosen, "1")]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_retry_selects_by_all_queue_and_range(setup_factory, runtime_factory, kind):  # type: ignore[no-untyped-def]
    setup = setup_for(setup_factory, kind)
    runtime = runtime_factory(setup)
    for n in range(2):
        record_failure(runtime, jobs.Ok(n), queue="a")
    on_b = [record_failure(runtime, jobs.Ok(n), queue="b") for n in range(3)]
    driver = runtime.connections.get()

    assert run_qctl(["retry", "--queue", "a"], setup.directory).returncode == 0
    assert driver.size("a") == 2 and sorted(failed_ids(setup.directory)) == sorted(on_b)

    row_id = runtime.failed_store.find(on_b[0]).id  # type: ignore[union-attr]
    assert run_qctl(["retry", "--range", f"{row_id}-{row_id}"], setup.directory).returncode == 0
    assert driver.size("b") == 1

    result = run_qctl(["retry", "all"], setup.directory)
    assert result.returncode == 0 and result.stdout.count("Retried") == 2
    assert driver.size("b") == 3 and failed_ids(setup.directory) == []
    assert run_qctl(["retry", "all"], setup.directory).stdout.strip() == "No failed jobs to retry."


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_unknown_ids_are_one_line_and_nothing_is_retried(setup_factory, runtime_factory, kind):  # type: ignore[no-untyped-def]
    setup = setup_for(setup_factory, kind)
    runtime = runtime_factory(setup)
    known = record_failure(runtime, jobs.Ok(1))
    for args in (["retry", known, "no-such-id"], ["forget", "no-such-id"]):
        result = run_qctl(args, setup.directory)
        assert result.returncode == 1  # the command was right; the id names nothing (2 is usage and config)
        assert result.stderr.strip().count("\n") == 0 and "no-such-id" in result.stderr
        assert "Traceback" not in result.stderr
    assert failed_ids(setup.directory) == [known]
    assert runtime.connections.get().size("default") == 0
    for args in (["retry"], ["retry", "--range", "5-1"], ["retry", "--range", "x"]):
        result = run_qctl(args, setup.directory)
        assert result.returncode == 2 and result.stderr.startswith("error: "), (args, result.stderr)


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_forget_flush_and_prune(setup_factory, runtime_factory, kind):  # type: ignore[no-untyped-def]
    setup = setup_for(setup_factory, kind)
    runtime = runtime_factory(setup)
    ids = [record_failure(runtime, jobs.Ok(n)) for n in range(4)]
    make_older(runtime.failed_store, ids[:2], hours=48)

    forgot = run_qctl(["forget", ids[3]], setup.directory)
    assert forgot.returncode == 0 and f"Deleted failed job {ids[3]}." in forgot.stdout
    pruned = run_qctl(["prune-failed", "--hours", "36"], setup.directory)
    assert pruned.returncode == 0 and "Pruned 2 failed jobs" in pruned.stdout
    assert failed_ids(setup.directory) == [ids[2]]
    assert "Deleted 0 failed jobs." in run_qctl(["flush", "--hours", "1"], setup.directory).stdout
    assert "Deleted 1 failed job." in run_qctl(["flush"], setup.directory).stdout
    assert failed_ids(setup.directory) == []


def test_retry_gives_a_retry_until_job_a_new_signed_deadline(setup_factory, runtime_factory):  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", key=generate_key())
    runtime = runtime_factory(setup)
    spent = jobs.BoomUntil(window=-100)  # its deadline passed long ago
    uuid = record_failure(runtime, spent)
    assert run_qctl(["retry", uuid], setup.directory).returncode == 0
    reserved = runtime.connections.get().pop(["default"])
    assert reserved is not None
    body = json.loads(reserved.raw)
    assert body["uuid"] == uuid
    assert abs(body["retryUntil"] - (time.time() - 100)) < 30  # recomputed by a fresh instance: window is -100 again
    from qctl.payload.envelope import parse

    parse(reserved.raw, runtime.signer)  # signed again with the app key: raises if not


def test_null_failed_store(setup_factory):  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    env = {"QCTL_FAILED_DRIVER": "null"}
    assert run_qctl(["failed"], setup.directory, env=env).stdout.strip() == "No failed jobs."
    assert run_qctl(["failed", "--json"], setup.directory, env=env).stdout.strip() == "[]"
    assert run_qctl(["retry", "all"], setup.directory, env=env).stdout.strip() == "No failed jobs to retry."
    assert run_qctl(["flush"], setup.directory, env=env).returncode == 0


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_failed_table_shows_the_first_error_line(setup_factory, runtime_factory, kind):  # type: ignore[no-untyped-def]
    setup = setup_for(setup_factory, kind)
    runtime = runtime_factory(setup)
    record_failure(runtime, jobs.Ok(1), queue="emails", error="RuntimeError: first line\n\nTraceback (most recent call last):\n  x")
    result = run_qctl(["failed"], setup.directory, env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "qctl_testjobs.Ok" in result.stdout and "emails" in result.stdout
    assert "RuntimeError: first line" in result.stdout and "Traceback" not in result.stdout


def test_retry_across_databases_pushes_then_forgets(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    """The queue on another database than the failed store: no shared transaction, push first."""
    from qctl.bus.retry import FailedJobRetrier, shares_database

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    uuid = record_failure(runtime, jobs.Ok(3), queue="q")
    pushed: list[tuple[str, str]] = []

    class Elsewhere:
        connection_name = "main"

        def push(self, payload: str, queue: str, delay: float = 0) -> None:
            assert runtime.failed_store.find(uuid) is not None  # still recorded while it is pushed
            pushed.append((payload, queue))

    class Connections:
        def get(self, name: str | None = None) -> Elsewhere:
            return Elsewhere()

    assert not shares_database(Elsewhere(), runtime.failed_store)  # type: ignore[arg-type]
    record = runtime.failed_store.find(uuid)
    retrier = FailedJobRetrier(runtime.failed_store, Connections(), None, lambda raw: jobs.Ok())  # type: ignore[arg-type]
    retried, problems = retrier.retry([record])  # type: ignore[list-item]
    assert not problems and [r.uuid for r in retried] == [uuid]
    assert pushed == [(record.payload.decode(), "q")]  # type: ignore[union-attr]
    assert runtime.failed_store.find(uuid) is None


def test_sqlite_shared_transaction_rolls_back_when_the_record_vanished(setup_factory, runtime_factory):  # type: ignore[no-untyped-def]
    from qctl.bus.retry import push_and_forget_in_one_transaction
    from qctl.errors import QctlError

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    uuid = record_failure(runtime, jobs.Ok(3))
    record = runtime.failed_store.find(uuid)
    runtime.failed_store.forget(uuid)
    driver = runtime.connections.get()
    with pytest.raises(QctlError, match="meanwhile"):
        push_and_forget_in_one_transaction(driver, runtime.failed_store, record, record.payload.decode())  # type: ignore[union-attr]
    assert driver.size("default") == 0  # the push was rolled back with it


def test_crash_between_push_and_forget(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    """One database: push and forget are one transaction, the crash point is never reached. Two
    databases: a crash leaves the job queued and still recorded (at least once, never lost)."""
    crash = {"QCTL_CRASHPOINT": "retry_after_push_before_forget"}
    shared = setup_factory("sqlite", subdir="shared")
    runtime = runtime_factory(shared)
    uuid = record_failure(runtime, jobs.Ok(1))
    result = run_qctl(["retry", uuid], shared.directory, env=crash)
    assert result.returncode == 0 and failed_ids(shared.directory) == []
    assert runtime.connections.get().size("default") == 1

    split = setup_factory("sqlite", subdir="split")
    head, failed_section = split.toml.split("[failed]\n", 1)
    failed_section = failed_section.replace("qctl.sqlite", "failed.sqlite", 1)
    split.config_file.write_text(head + "[failed]\n" + failed_section, encoding="utf-8")
    runtime = runtime_factory(split)
    uuid = record_failure(runtime, jobs.Ok(2))
    result = run_qctl(["retry", uuid], split.directory, env=crash)
    assert result.returncode == 137  # died after the push, before the forget
    assert runtime.connections.get().size("default") == 1 and failed_ids(split.directory) == [uuid]


def test_a_redis_failed_store_that_is_down_or_unnamed_is_one_line(tmp_path):  # type: ignore[no-untyped-def]
    down = tmp_path / "down"
    down.mkdir()
    (down / "qctl.toml").write_text('default = "redis"\n[connections.redis]\nurl = "redis://127.0.0.1:1/0"\n')
    for args in (["failed"], ["flush"], ["retry", "all"]):
        result = run_qctl(args, down)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("error: failed-job store at Redis 127.0.0.1:1: cannot ")
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    (unnamed / "qctl.toml").write_text('[failed]\ndriver = "redis"\n')
    result = run_qctl(["failed"], unnamed)
    assert result.returncode == 2 and result.stderr.startswith("error: qctl.toml: failed.url: missing")
