"""Job metrics from real worker processes: after N successes and M failures (each released once
first) on two workers, `qctl metrics --json` adds up exactly; `[metrics] enabled = false` records nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qctl.runtime import use
from tests.support.processes import run_qctl, spawn_qctl

SUCCESSES, FAILURES = 12, 5


def metrics_rows(directory: Path, *args: str) -> list[dict[str, Any]]:
    done = run_qctl(["metrics", "--json", *args], directory)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def drain_with_two_workers(directory: Path) -> None:
    workers = [spawn_qctl(["work", "--stop-when-empty", "--tries", "2", "--sleep", "0.1", "--name", name], directory,
                          name=name) for name in ("left", "right")]
    for worker in workers:
        assert worker.wait(90) == 0, worker.stderr()


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_metrics_add_up_over_two_workers(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Boom, Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    with use(runtime):
        for n in range(SUCCESSES):
            Ok(n).dispatch()
        for _ in range(FAILURES):
            Boom().on_queue("default").dispatch()
    drain_with_two_workers(setup.directory)

    rows = {row["class"]: row for row in metrics_rows(setup.directory)}
    assert set(rows) == {"qctl_testjobs.Ok", "qctl_testjobs.Boom"}
    ok, boom = rows["qctl_testjobs.Ok"], rows["qctl_testjobs.Boom"]
    assert (ok["processed"], ok["failed"], ok["released"]) == (SUCCESSES, 0, 0)
    assert (boom["processed"], boom["failed"], boom["released"]) == (0, FAILURES, FAILURES)  # a retry, then failed
    for row in (ok, boom):
        assert row["connection"] == "main" and row["queue"] == "default"
        assert 0 <= row["runtime_p50_seconds"] <= row["runtime_p95_seconds"] <= row["runtime_max_seconds"]
        assert row["wait_max_seconds"] is not None and row["wait_max_seconds"] >= 0
    assert [row["class"] for row in metrics_rows(setup.directory, "--class", "qctl_testjobs.Ok")] == ["qctl_testjobs.Ok"]
    assert metrics_rows(setup.directory, "--queue", "elsewhere") == []
    assert sum(row["processed"] for row in metrics_rows(setup.directory, "--since", "7d")) == SUCCESSES

    table = run_qctl(["metrics"], setup.directory, env={"COLUMNS": "160"})
    assert table.returncode == 0 and "qctl_testjobs.Ok" in table.stdout


def test_metrics_off_records_nothing(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory("sqlite", extra="\n[metrics]\nenabled = false\n")
    with use(runtime_factory(setup)):
        Ok(1).dispatch()
    worker = spawn_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory)
    assert worker.wait(60) == 0, worker.stderr()
    assert metrics_rows(setup.directory) == []
    assert "Metrics are off" in run_qctl(["metrics"], setup.directory).stdout


@pytest.mark.parametrize("toml, expected", [
    ("[metrics]\nenabled = \"yes\"\n", "metrics.enabled: expected true or false"),
    ("[metrics]\nminutes_kept_hours = 0\n", "metrics.minutes_kept_hours"),
    ("[metrics]\nkept = 1\n", "metrics.kept: unknown key"),
])
def test_a_bad_metrics_section_is_one_line_and_exit_2(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "qctl.toml").write_text(toml)
    done = run_qctl(["metrics"], tmp_path)
    assert done.returncode == 2 and expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_metrics_since_must_be_a_duration(tmp_path: Path) -> None:
    for bad in ("soon", "0", "-1h", "1y"):
        done = run_qctl(["metrics", "--since", bad], tmp_path)
        assert done.returncode == 2 and "--since: expected a duration" in done.stderr
