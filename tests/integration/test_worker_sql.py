"""The core end to end on every SQL database: dispatch from Python, `qctl work` in real processes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from qctl.payload.envelope import HANDLER_JOB, Envelope, derived_uuid
from qctl.payload.signing import Signer, generate_key
from qctl.runtime import Runtime, use
from tests.support.processes import read_ledger, run_qctl, spawn_qctl

KINDS = ["sqlite", "postgresql", "mariadb"]
FAST = ["--sleep", "0.1"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def ends(ledger: Path) -> Counter[str]:
    return Counter(fields[1] for fields in read_ledger(ledger) if fields[0] == "end")


def starts(ledger: Path) -> Counter[str]:
    return Counter(fields[1] for fields in read_ledger(ledger) if fields[0] == "start")


def test_dispatched_jobs_run_once_and_leave_the_queue(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok, write_file

    import qctl

    setup = setup_factory(kind)
    runtime: Runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    out = tmp_path / "fn.txt"
    with use(runtime):
        ids = [Ok(n, str(ledger)).dispatch() for n in range(20)]
        qctl.dispatch(write_file, str(out), "from a queued function")
    assert runtime.connections.get().size("default") == 21
    done = run_qctl(["work", "--stop-when-empty", *FAST], setup.directory)
    assert done.returncode == 0, done.stderr
    assert ends(ledger) == Counter({job_id: 1 for job_id in ids})
    assert out.read_text() == "from a queued function"
    assert runtime.connections.get().size("default") == 0
    assert runtime.failed_store.count() == 0


def test_four_worker_processes_run_each_job_exactly_once(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Sleep

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        # 5 ms each: no-op jobs are drained by whichever worker starts first before the others are up
        ids = {Sleep(0.005, str(ledger)).dispatch() for _ in range(400)}
    workers = [spawn_qctl(["work", "--stop-when-empty", *FAST], setup.directory, name=f"w{i}") for i in range(4)]
    statuses = [w.wait(timeout=180) for w in workers]
    assert statuses == [0, 0, 0, 0], [w.stderr() for w in workers]
    assert "database is locked" not in "".join(w.stderr() for w in workers)
    counts = ends(ledger)
    assert set(counts) == ids
    assert set(counts.values()) == {1}
    assert len({fields[3] for fields in read_ledger(ledger)}) >= 2  # the work really was shared
    assert runtime.connections.get().size("default") == 0


def test_exception_retries_then_lands_in_failed_jobs(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Boom, Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        boom = Boom(ledger=str(ledger)).dispatch()
        ok = Ok(1, str(ledger)).dispatch()
    done = run_qctl(["work", "--stop-when-empty", "--tries", "3", "--backoff", "0", *FAST], setup.directory)
    assert done.returncode == 0, done.stderr
    assert starts(ledger)[boom] == 3
    assert ends(ledger)[ok] == 1
    record = runtime.failed_store.find(boom)
    assert record is not None
    assert record.connection == "main" and record.queue == "default"
    assert record.error_line == "RuntimeError: boom on attempt 3"
    assert "Traceback" in record.exception and "qctl_testjobs" in record.exception
    assert json.loads(record.payload)["uuid"] == boom
    assert runtime.connections.get().size("default") == 0
    assert "FAIL" in done.stdout and boom in done.stdout


def test_the_jobs_own_tries_beat_the_worker_option(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Boom

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    job = Boom(times=2, ledger=str(ledger))
    job.tries = 5
    with use(runtime):
        job_id = job.dispatch()
    done = run_qctl(["work", "--stop-when-empty", "--tries", "1", *FAST], setup.directory)
    assert done.returncode == 0, done.stderr
    assert starts(ledger)[job_id] == 3 and ends(ledger)[job_id] == 1
    assert runtime.failed_store.count() == 0


def test_priority_queues_and_verbose_output(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        low = [Ok(n, str(ledger)).on_queue("low").dispatch() for n in range(3)]
        high = [Ok(n, str(ledger)).on_queue("high").dispatch() for n in range(3)]
    done = run_qctl(["work", "--queue", "high,low", "--stop-when-empty", "-v", *FAST], setup.directory)
    assert done.returncode == 0, done.stderr
    order = [fields[1] for fields in read_ledger(ledger) if fields[0] == "start"]
    assert order == high + low
    lines = [line for line in done.stdout.splitlines() if " DONE " in line]
    assert len(lines) == 6
    assert all("qctl_testjobs.Ok" in line and line.rstrip().endswith("ms") for line in lines)
    assert high[0] in lines[0]


def test_delayed_dispatch_waits(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from qctl_testjobs import Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        later = Ok(1, str(ledger)).delay(dt.timedelta(seconds=60)).dispatch()
        now = Ok(2, str(ledger)).delay(60).without_delay().dispatch()
    done = run_qctl(["work", "--stop-when-empty", *FAST], setup.directory)
    assert done.returncode == 0
    assert ends(ledger) == Counter({now: 1})
    assert later not in ends(ledger)
    assert runtime.connections.get().size("default") == 1


def _envelope(command_name: str, handler: str = HANDLER_JOB) -> Envelope:
    return Envelope(uuid=derived_uuid("poison", command_name), display_name=command_name, job=handler,
                    command_name=command_name, command={}, pushed_at="0")


def test_poison_rows_land_in_failed_jobs_and_the_worker_keeps_going(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    key = generate_key()
    setup = setup_factory(kind, key=key)
    runtime = runtime_factory(setup)
    driver = runtime.connections.get()
    signer = runtime.signer
    assert signer is not None
    other_signer = Signer(b"another key that is long enough")
    ledger = tmp_path / "ledger"
    marker = tmp_path / "evil-imported"
    poison = {
        "not json": "this is not json {{{",
        "empty": "",
        "missing fields": json.dumps({"uuid": "x", "signature": signer.sign({"uuid": "x"})}),
        "unsigned": _envelope("qctl_testjobs:Ok").to_json(None),
        "wrong key": _envelope("qctl_testjobs:Ok").to_json(other_signer),
        "unknown class": _envelope("qctl_testjobs:DoesNotExist").to_json(signer),
        "outside app": _envelope("evil_module:run").to_json(signer),
        "os.system": _envelope("os:system").to_json(signer),
        "bad value": Envelope(uuid=derived_uuid("poison", "bad-value"), display_name="x", job=HANDLER_JOB, command_name="qctl_testjobs:Ok",
                              command={"n": {"__qctl__": "decimal", "v": "abc"}}, pushed_at="0").to_json(signer),
    }
    for raw in poison.values():
        driver.push(raw, "default")
    with use(runtime):
        sentinel = Ok(99, str(ledger)).dispatch()
    done = run_qctl(["work", "--stop-when-empty", *FAST], setup.directory, env={"QCTL_TEST_EVIL_MARKER": str(marker)})
    assert done.returncode == 0, done.stderr
    assert ends(ledger) == Counter({sentinel: 1})
    assert not marker.exists(), "a payload got a module outside `app` imported"
    records = runtime.failed_store.all()
    assert len(records) == len(poison)
    stored = {record.payload.decode(): record.error_line for record in records}
    assert set(stored) == set(poison.values())  # byte-exact
    reasons = {name: stored[raw] for name, raw in poison.items()}
    assert "not valid JSON" in reasons["not json"] and "not valid JSON" in reasons["empty"]
    assert "missing field" in reasons["missing fields"]
    assert "missing signature" in reasons["unsigned"]
    assert "signature mismatch" in reasons["wrong key"]
    assert "unknown job class" in reasons["unknown class"]
    assert "outside the app packages" in reasons["outside app"] and "add 'evil_module'" in reasons["outside app"]
    assert "outside the app packages" in reasons["os.system"]
    assert "bad decimal" in reasons["bad value"]
    assert all("\n" not in line for line in reasons.values())
    assert driver.size("default") == 0
