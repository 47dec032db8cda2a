"""What a command imports (behaviour, not timing): a worker loads only what its stores need.

A Redis worker whose cache and failed store are that Redis imports no SQLAlchemy; no worker
imports Typer, rich or pydantic (the CLI's help machinery); `--help` and `--version` import
neither a database nor a Redis client.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import qctl_testjobs as jobs

from qctl.bus.payloads import build_envelope
from qctl.runtime import Runtime
from tests.support.processes import qctl_env, read_ledger

CHILD = """
import json, sys
from qctl.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exit:
    code = exit.code
with open(sys.argv[1], "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, out)
"""
"""Runs the `qctl` entry point with the given arguments, then writes its exit status and every module it imported."""

CLI_MACHINERY = ("typer", "rich", "pydantic", "click")


def imported_by(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    report = cwd / "modules.json"
    done = subprocess.run([sys.executable, "-c", CHILD, str(report), *args], cwd=cwd, env=qctl_env(),
                          capture_output=True, text=True, timeout=120)
    assert report.exists(), done.stderr
    found = json.loads(report.read_text(encoding="utf-8"))
    return found["exit"], {name.split(".")[0] for name in found["modules"]}


def push(runtime: Runtime, job: jobs.Job) -> None:
    envelope = build_envelope(job, runtime.signer)
    runtime.connections.get().push(envelope.to_json(runtime.signer), "default")


def test_a_redis_only_worker_imports_no_sqlalchemy_and_records_failures_in_redis(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory("redis", only_connection=True)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    push(runtime, jobs.Ok(1, str(ledger)))
    push(runtime, jobs.Boom(ledger=str(ledger)))

    status, modules = imported_by(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory)

    assert status == 0
    assert [row[0] for row in read_ledger(ledger)] == ["start", "end", "start"]  # both jobs ran
    assert [record.exception.split(":")[0] for record in runtime.failed_store.all()] == ["RuntimeError"]
    assert type(runtime.failed_store).__name__ == "RedisFailedJobStore"
    assert "sqlalchemy" not in modules
    assert not modules & set(CLI_MACHINERY), modules & set(CLI_MACHINERY)
    assert "qctl" in modules and "redis" in modules  # the report is of a real run


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_worker_imports_no_cli_machinery(setup_factory, runtime_factory, kind, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    push(runtime, jobs.Ok(1, str(ledger)))

    status, modules = imported_by(["work", "--once"], setup.directory)

    assert status == 0 and [row[0] for row in read_ledger(ledger)] == ["start", "end"]
    assert "sqlalchemy" in modules and not modules & set(CLI_MACHINERY), modules & set(CLI_MACHINERY)


@pytest.mark.parametrize("args", [["--help"], ["--version"], []])
def test_help_and_version_import_no_store_client(args: list[str], tmp_path: Path) -> None:
    status, modules = imported_by(args, tmp_path)
    assert status == 0
    assert not modules & {"sqlalchemy", "redis", "psutil"}, modules & {"sqlalchemy", "redis", "psutil"}


def test_a_work_line_the_quick_path_does_not_take_still_works(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    push(runtime, jobs.Ok(1, str(ledger)))
    status, modules = imported_by(["work", "--once", "--once"], setup.directory)  # repeated: Typer's to judge
    assert status == 0 and "typer" in modules and [row[0] for row in read_ledger(ledger)] == ["start", "end"]
    refused = subprocess.run([sys.executable, "-m", "qctl", "work", "--sleep", "-1"], cwd=setup.directory,
                             env=qctl_env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.startswith("error: --sleep: "), refused.stderr


def test_status_on_a_redis_only_deployment_imports_no_sqlalchemy(setup_factory, runtime_factory, tmp_path):  # type: ignore[no-untyped-def]
    """A read-only command learns it is reading only without the SQL machinery (qctl.db.reading)."""
    setup = setup_factory("redis", only_connection=True)
    runtime = runtime_factory(setup)
    push(runtime, jobs.Ok(1, str(tmp_path / "ledger")))

    status, modules = imported_by(["status", "--json"], setup.directory)

    assert status == 0 and "redis" in modules
    assert "sqlalchemy" not in modules
