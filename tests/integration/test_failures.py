"""Attempts, failures, events and poison payloads with real worker processes, on every driver.

Nothing here is SQL-specific except how the failed store is taken down (it is
a database table whatever the queue driver), so "redis" can join KINDS.
"""

from __future__ import annotations

import json
import signal
import time
import uuid as uuid_module
from pathlib import Path

import pytest
import qctl_testjobs as jobs
from sqlalchemy import text

from qctl.payload.signing import generate_key
from tests.support.ledger import ledger_rows
from tests.support.processes import read_ledger, run_qctl, spawn_qctl, wait_for
from tests.support.workers import dispatch, failed_records, queue_size, wait_for_failed

pytestmark = pytest.mark.usefixtures("worker_slots")  # every worker with one slot and with eight

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
DRAIN = ["work", "--stop-when-empty", "--sleep", "0.1"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def starts(ledger: Path, uuid: str) -> list[int]:
    return [int(row[2]) for row in read_ledger(ledger) if row[0] == "start" and row[1] == uuid]


def drain(setup, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    result = run_qctl([*DRAIN, *extra], setup.directory, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_max_exceptions_counts_only_exceptions_across_releases(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    released = dispatch(runtime, jobs.ReleaseOrBoom(str(ledger)))
    always = dispatch(runtime, jobs.BoomMaxExceptions(ledger=str(ledger)))
    drain(setup, "--tries", "1")  # the jobs' own tries (20 and 0) beat --tries 1
    assert starts(ledger, released) == [1, 2, 3, 4]  # releases on 1 and 3, raises on 2 and 4
    assert starts(ledger, always) == [1, 2, 3]
    records = failed_records(runtime)
    assert records[released].error_line == "RuntimeError: boom on attempt 4"
    assert records[always].error_line == "RuntimeError: boom on attempt 3"
    assert queue_size(runtime) == 0


def test_tries_from_the_worker_and_from_the_job(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    by_worker = dispatch(runtime, jobs.Boom(ledger=str(ledger)))
    by_job = dispatch(runtime, jobs.BoomThreeTries(ledger=str(ledger)))
    recovers = dispatch(runtime, jobs.Boom(times=1, ledger=str(ledger)))
    drain(setup, "--tries", "2")
    assert starts(ledger, by_worker) == [1, 2] and starts(ledger, by_job) == [1, 2, 3]
    assert starts(ledger, recovers) == [1, 2]
    assert set(failed_records(runtime)) == {by_worker, by_job}


def test_retry_until_deadline_replaces_tries(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    worker = spawn_qctl(["work", "--sleep", "0.1"], setup.directory)
    try:
        ready = dispatch(runtime, jobs.Ok(0, str(ledger)))  # the deadline must not be spent on start-up
        wait_for(lambda: read_ledger(ledger), 60, message="the worker to be up")
        wall, mono = time.time(), time.monotonic()
        uuid = dispatch(runtime, jobs.BoomUntil(window=4, ledger=str(ledger)))  # tries = 1, backoff = 1
        record = wait_for_failed(runtime, uuid, timeout=30)
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    started_at = [float(row[4]) for row in read_ledger(ledger) if row[0] == "start" and row[1] != ready]
    assert len(started_at) >= 2, record.exception  # retried past its tries = 1 while the deadline held
    deadline = mono + (json.loads(record.payload)["retryUntil"] - wall)  # on the ledger's monotonic clock
    assert max(started_at) <= deadline + 1
    assert "retry_until deadline has passed" in record.exception or record.error_line.startswith("RuntimeError")


def test_self_fail_delete_and_failed_hook(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    gave_up = dispatch(runtime, jobs.FailsItself("no luck", str(ledger)))
    deleted = dispatch(runtime, jobs.DeletesItself(ledger=str(ledger)))
    hooked = dispatch(runtime, jobs.WithFailedHook(str(ledger), hook_raises=True))
    sentinel = dispatch(runtime, jobs.Ok(1, str(ledger)))
    result = drain(setup, "--tries", "3")
    records = failed_records(runtime)
    assert set(records) == {gave_up, hooked}
    assert records[gave_up].error_line == "ManuallyFailedError: no luck"
    assert starts(ledger, deleted) == [1]  # deleted, then raised: not retried, not failed
    hook_rows = [row for row in read_ledger(ledger) if row[0] == "failed"]
    assert [(row[1], row[5]) for row in hook_rows] == [(hooked, "RuntimeError")]
    assert "the failed() hook of" in result.stderr  # logged, and the worker went on
    assert any(row[0] == "end" and row[1] == sentinel for row in read_ledger(ledger))
    assert queue_size(runtime) == 0


def test_exception_text_that_is_not_utf8(setup_factory, runtime_factory, kind):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    uuid = dispatch(runtime, jobs.BadMessage())
    worker = spawn_qctl(DRAIN, setup.directory)  # its output may hold the raw bytes: read as files
    assert worker.wait(30) == 0
    listed = run_qctl(["failed", "--json"], setup.directory)
    assert listed.returncode == 0
    (row,) = json.loads(listed.stdout)
    assert row["id"] == uuid and row["error"].startswith("RuntimeError: bad ")
    assert "\x00" not in row["error"] and "é" in row["error"]


def test_listeners_from_app_modules_see_every_job_and_cannot_kill_the_worker(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", app=("qctl_testjobs", "qctl_testjobs.listeners"))
    runtime = runtime_factory(setup)
    events = tmp_path / "events"
    ok = dispatch(runtime, jobs.Ok(1))
    boom = dispatch(runtime, jobs.Boom())
    result = drain(setup, env={"QCTL_TEST_EVENTS_LOG": str(events)})
    lines = [line.split() for line in events.read_text().splitlines()]
    assert ["before", "main", ok, "-"] in lines and ["after", "main", ok, "-"] in lines
    assert ["before", "main", boom, "-"] in lines and ["failing", "main", boom, "RuntimeError"] in lines
    assert ["after", "main", boom, "-"] not in lines
    assert any(line[0] == "looping" for line in lines)
    assert "a listener that raises" in result.stderr


# --- poison payloads (P-02, P-04, P-05, P-07) -----------------------------------------------------

def poison_payloads(evil_marker: Path) -> dict[str, str]:
    good = json.loads(json.dumps({"uuid": str(uuid_module.uuid4()), "displayName": "X", "job": "qctl.CallQueuedHandler@call",
                                  "data": {"commandName": "qctl_testjobs:Ok", "command": {"n": 1, "ledger": None}}}))
    bad_value = json.loads(json.dumps(good))
    bad_value["data"]["command"]["n"] = {"__qctl__": "decimal", "v": "abc"}
    gone_member = json.loads(json.dumps(good)) | {"uuid": str(uuid_module.uuid4())}
    gone_member["data"]["command"]["n"] = {"__qctl__": "enum", "v": {"cls": "qctl_testjobs:Colour", "v": "purple"}}
    bad_date = json.loads(json.dumps(good)) | {"uuid": str(uuid_module.uuid4())}
    bad_date["data"]["command"]["n"] = {"__qctl__": "datetime", "v": "not a date"}
    unknown = json.loads(json.dumps(good)) | {"uuid": str(uuid_module.uuid4())}
    unknown["data"] = {"commandName": "qctl_testjobs:DoesNotExist", "command": {}}
    evil = json.loads(json.dumps(good)) | {"uuid": str(uuid_module.uuid4())}
    evil["data"] = {"commandName": "evil_module:run", "command": {}}
    return {
        "garbage": "garbage {{{",
        "empty": "",
        "array": "[]",
        "no fields": '{"uuid":"poison-bare"}',
        "no data": json.dumps({"uuid": "poison-nodata", "job": "qctl.CallQueuedHandler@call"}),
        "bad typed value": json.dumps(bad_value),
        "enum member gone": json.dumps(gone_member),
        "bad datetime": json.dumps(bad_date),
        "unknown class": json.dumps(unknown),
        "evil class": json.dumps(evil),
    }


EXPECTED_REASONS = {
    "garbage": "payload is not valid JSON",
    "empty": "payload is not valid JSON",
    "array": "payload is not a JSON object",
    "no fields": "payload is missing field 'data'",
    "no data": "payload is missing field 'data'",
    "bad typed value": "Ok.n: bad decimal value",
    "enum member gone": "Ok.n: qctl_testjobs:Colour has no member with value 'purple'",
    "bad datetime": "Ok.n: bad datetime value 'not a date'",
    "unknown class": "unknown job class 'qctl_testjobs:DoesNotExist'",
    "evil class": "outside the app packages",
}


def test_poison_payloads_fail_once_with_their_bytes_and_the_next_job_runs(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    marker = tmp_path / "evil-imported"
    ledger = tmp_path / "ledger"
    driver = runtime.connections.get()
    payloads = poison_payloads(marker)
    for raw in payloads.values():
        driver.push(raw, "default")
    sentinel = dispatch(runtime, jobs.Ok(1, str(ledger)))
    drain(setup, "--tries", "5", env={"QCTL_TEST_EVIL_MARKER": str(marker)})
    by_payload = {record.payload: record for record in runtime.failed_store.all()}
    assert len(by_payload) == len(payloads)
    for name, raw in payloads.items():
        record = by_payload[raw.encode()]  # the original bytes, exactly
        assert EXPECTED_REASONS[name] in record.exception, (name, record.exception)
        assert "\n" not in record.exception.strip(), name  # one line, no traceback
    assert not marker.exists()  # nothing was imported on a payload's say-so
    assert [row[0] for row in read_ledger(ledger) if row[1] == sentinel] == ["start", "end"]
    assert queue_size(runtime) == 0


def test_signature_problems_fail_on_first_reservation(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind, key=generate_key())
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    from qctl.bus.payloads import build_envelope

    signed = json.loads(build_envelope(jobs.Ok(1, str(ledger)), runtime.signer).to_json(runtime.signer))
    tampered = signed | {"uuid": "tampered"}
    tampered["data"] = signed["data"] | {"command": {"n": 2, "ledger": str(ledger)}}
    unsigned = {k: v for k, v in signed.items() if k != "signature"} | {"uuid": "unsigned"}
    other_key = json.loads(build_envelope(jobs.Ok(3, str(ledger)), None).to_json(None)) | {"uuid": "other-key"}
    from qctl.payload.signing import Signer

    other_key["signature"] = Signer(b"another key").sign(other_key)
    garbage_sig = signed | {"uuid": "garbage-sig", "signature": 12}
    driver = runtime.connections.get()
    raw = {body["uuid"]: json.dumps(body) for body in (tampered, unsigned, other_key, garbage_sig)}
    for payload in raw.values():
        driver.push(payload, "default")
    sentinel = dispatch(runtime, jobs.Ok(9, str(ledger)))
    drain(setup)
    # An unverified payload's claimed uuid is not trusted: records are found by their exact bytes.
    records = {record.payload.decode(): record for record in failed_records(runtime).values()}
    assert not set(raw) & set(failed_records(runtime))
    assert "missing signature" in records[raw["unsigned"]].error_line
    for uuid in ("tampered", "other-key", "garbage-sig"):
        assert "signature mismatch" in records[raw[uuid]].error_line, uuid
    assert [row[1] for row in read_ledger(ledger) if row[0] == "start"] == [sentinel]  # handle() never ran for them


# --- a failed store that is down loses nothing (P-10) ----------------------------------------------

def rename_failed_table(runtime, setup, back: bool = False) -> None:  # type: ignore[no-untyped-def]
    real, hidden = setup.table("failed_jobs"), setup.table("failed_hidden")
    old, new = (hidden, real) if back else (real, hidden)
    with runtime.failed_store.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_failed_store_down_keeps_the_job_queued_until_it_can_be_recorded(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    warm_up = dispatch(runtime, jobs.Boom(ledger=str(ledger)))
    worker = spawn_qctl(["work", "--sleep", "0.1", "--tries", "1"], setup.directory)
    try:
        wait_for_failed(runtime, warm_up, timeout=20)  # the worker has found its failed table
        rename_failed_table(runtime, setup)
        doomed = dispatch(runtime, jobs.Boom(ledger=str(ledger)))
        wait_for(lambda: "stays queued" in worker.stderr(), 20, message="the store-down notice")
        time.sleep(1)
        assert worker.alive() and queue_size(runtime) == 1  # still queued, not lost
        rename_failed_table(runtime, setup, back=True)
        record = wait_for_failed(runtime, doomed, timeout=20)
        wait_for(lambda: queue_size(runtime) == 0, 10, message="the queue to empty")
    finally:
        worker.signal(signal.SIGTERM)
        with runtime.failed_store.engine.begin() as conn:  # shared servers: leave no renamed table behind
            conn.execute(text(f"DROP TABLE IF EXISTS {setup.table('failed_hidden')}"))
        assert worker.wait(15) == 0
    assert sum(1 for r in runtime.failed_store.all() if r.uuid == doomed) == 1
    assert starts(ledger, doomed) == [1]  # it ran once; later reservations only tried to record it
    assert "attempted too many times" in record.error_line


@pytest.mark.parametrize(
    "sql_kind", ["sqlite", "postgresql", "mariadb"]
)
def test_attempts_at_the_column_maximum_do_not_wedge_the_queue(setup_factory, runtime_factory, sql_kind, tmp_path):  # type: ignore[no-untyped-def]
    """P-03 (SQL only: the row is changed in place)."""
    setup = setup_factory(sql_kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    worn = dispatch(runtime, jobs.SleepUnlimited(0, str(ledger)))  # tries = 0
    driver = runtime.connections.get()
    with driver.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f"UPDATE {setup.table('jobs')} SET attempts = 2147483647"))
    sentinel = dispatch(runtime, jobs.Ok(1, str(ledger)))
    worker = spawn_qctl(["work", "--sleep", "0.1"], setup.directory)
    try:
        wait_for(lambda: ledger_rows(ledger, "end", sentinel), 12, message="the job behind the worn row")
        wait_for(lambda: queue_size(runtime) == 0, 10, message="the queue to empty")
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    assert ledger_rows(ledger, "end", worn) or worn in failed_records(runtime)
