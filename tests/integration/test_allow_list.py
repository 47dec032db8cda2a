"""The allow-list end to end (hardening §2): forged payloads that name code an app module only borrows
are failed at once and the worker keeps going; dispatch refuses what a worker would; `qctl retry`
never runs a stored sync record inside the CLI."""

from __future__ import annotations

import enum
import http
import json
from pathlib import Path

import pytest
import qctl_testjobs as jobs

import qctl
from qctl.errors import SerializationError
from qctl.payload.envelope import HANDLER_FUNCTION, HANDLER_JOB, Envelope, derived_uuid
from qctl.runtime import use
from tests.support.processes import read_ledger, run_qctl

KINDS = ["sqlite", "redis"]  # the rule lives above the drivers; one SQL store and Redis


def forged(name: str, command_name: str, command: object, handler: str = HANDLER_JOB) -> str:
    return Envelope(uuid=derived_uuid("allow-list", name), display_name=command_name, job=handler,
                    command_name=command_name, command=command, pushed_at="0").to_json(None)


@pytest.mark.parametrize("kind", KINDS)
def test_forged_payloads_naming_borrowed_code_fail_at_once_and_the_worker_keeps_going(setup_factory, runtime_factory, kind, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    out = tmp_path / "out"
    status = {"__qctl__": "enum", "v": {"cls": "http:HTTPStatus", "v": 200}}
    poison = {
        "sys.exit as catch": forged("exit", "qctl_testjobs:write_file",
                                    {"args": [str(out), "ran"], "kwargs": {}, "catch": ["qctl_testjobs.borrowed:sys.exit"]},
                                    HANDLER_FUNCTION),
        "os.system as catch": forged("system", "qctl_testjobs:write_file",
                                     {"args": [str(out), "ran"], "kwargs": {}, "catch": ["qctl_testjobs.borrowed:os.system"]},
                                     HANDLER_FUNCTION),
        "qctl.Job itself": forged("job", "qctl_testjobs:Job", {}),
        "a job defined outside app": forged("hog", "qctl_testjobs.borrowed:Hog", {"megabytes": 1, "ledger": str(ledger)}),
        "an enum defined outside app": forged("enum", "qctl_testjobs:Ok", {"n": status, "ledger": str(ledger)}),
        "a lazy module attribute": forged("lazy", "qctl_testjobs.borrowed:Lazy", {}),
    }
    driver = runtime.connections.get()
    for raw in poison.values():
        driver.push(raw, "default")
    with use(runtime):
        good = jobs.Ok(1, str(ledger)).dispatch()
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory)
    assert done.returncode == 0, done.stderr
    assert [row[1] for row in read_ledger(ledger) if row[0] == "end"] == [good]
    assert not out.exists()
    reasons = {record.payload.decode(): record.error_line for record in runtime.failed_store.all()}
    assert set(reasons) == set(poison.values())
    by_name = {name: reasons[raw] for name, raw in poison.items()}
    assert "defined in 'sys'" in by_name["sys.exit as catch"] or "not a function" in by_name["sys.exit as catch"]
    assert "outside the app packages" in by_name["os.system as catch"] or "not a function" in by_name["os.system as catch"]
    assert "defined in 'qctl.jobs.job'" in by_name["qctl.Job itself"]
    assert "defined in 'qctl_lifecyclejobs'" in by_name["a job defined outside app"]
    assert "http:HTTPStatus" in by_name["an enum defined outside app"]
    assert "has no 'Lazy'" in by_name["a lazy module attribute"]


class Outside(enum.Enum):  # defined in the tests package, not in app
    A = 1


def test_dispatch_refuses_values_and_callbacks_no_worker_would_take(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory("sqlite"))
    with use(runtime):
        with pytest.raises(SerializationError, match="enum http.HTTPStatus is outside the app packages"):
            jobs.Ok(http.HTTPStatus.OK).dispatch()  # type: ignore[arg-type]
        with pytest.raises(SerializationError, match="enum tests.integration.test_allow_list.Outside"):
            jobs.Ok(Outside.A).dispatch()  # type: ignore[arg-type]
        with pytest.raises(SerializationError, match="its catch callback json:dumps"):
            qctl.queued(jobs.write_file, "x", "y").catch(json.dumps).dispatch()
        jobs.Ok(jobs.Colour.RED).dispatch()  # type: ignore[arg-type]  # an app enum is fine
    assert runtime.connections.get().size("default") == 1


def test_retry_refuses_a_record_of_a_sync_connection(setup_factory, runtime_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite", extra='\n[connections.now]\ndriver = "sync"\n')
    runtime = runtime_factory(setup)
    out = tmp_path / "out"
    raw = forged("sync", "qctl_testjobs:write_file", {"args": [str(out), "ran"], "kwargs": {}, "catch": []}, HANDLER_FUNCTION)
    uuid = json.loads(raw)["uuid"]
    runtime.failed_store.log("now", "default", raw.encode(), "RuntimeError: boom", uuid)
    done = run_qctl(["retry", "all"], setup.directory)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "a sync connection" in done.stderr and "qctl forget" in done.stderr
    assert not out.exists()
    assert runtime.failed_store.find(uuid) is not None  # kept: nothing lost


def test_verbose_output_says_fail_never_done_for_a_refused_or_unreadable_payload(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    driver = runtime.connections.get()
    driver.push(forged("system", "os:system", {}), "default")
    driver.push("not json \x1b[31m", "default")
    driver.push(forged("forged-name", "qctl_testjobs:Nope", {}).replace('"displayName":"qctl_testjobs:Nope"',
                                                                        '"displayName":"x\\u001b[2J\\nDONE"'), "default")
    done = run_qctl(["work", "--stop-when-empty", "--sleep", "0.1", "-v"], setup.directory)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 3 and all(" FAIL " in line for line in lines), done.stdout
    assert " DONE " not in done.stdout and "\x1b" not in done.stdout  # a forged name cannot forge a line


def test_qctl_failed_lists_and_shows_whatever_a_record_holds(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    store = runtime.failed_store
    store.log("main", "default", b"\xff\xfe not utf-8", "PayloadError: payload is not valid UTF-8", derived_uuid("f", "1"))
    store.log("main", "q\x1b[31m", b'{"displayName": "\\u001b]0;pwned\\u0007"}', "Boom: [bold]x[/bold]\x1b[2J\n" + "y" * 10_000,
              derived_uuid("f", "2"))
    store.log("main", "default", b"[]", "", derived_uuid("f", "3"))
    listed = run_qctl(["failed"], setup.directory)
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr and "\x1b" not in listed.stdout
    as_json = run_qctl(["failed", "--json"], setup.directory)
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert len(rows) == 3
    assert any(row["error"].startswith("Boom: [bold]x[/bold]") for row in rows)  # literal, not markup
