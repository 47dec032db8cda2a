"""Prometheus: `qctl serve-metrics` scraped over HTTP while real workers run, `qctl metrics
--prometheus`, both parsed with prometheus_client's own parser; the missing extra; bad input."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from qctl.runtime import use
from tests.support.configs import TestSetup
from tests.support.processes import WorkerProcess, qctl_env, run_qctl, spawn_qctl, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


@contextmanager
def serving(setup: TestSetup, *args: str) -> Iterator[tuple[str, WorkerProcess]]:
    """`qctl serve-metrics --port 0`: the base URL it printed, and the process."""
    server = spawn_qctl(["serve-metrics", "--port", "0", *args], setup.directory, name="serve")
    try:
        found: list[str] = []

        def printed() -> bool:
            found[:] = re.findall(r"http://127\.0\.0\.1:\d+", server.stdout())
            assert server.alive(), server.stderr()
            return bool(found)

        wait_for(printed, 30, interval=0.1, message="serve-metrics to print its address")
        yield found[0], server
    finally:
        server.kill()
        server.wait(30)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_a_scrape_counts_every_job_exactly_and_shows_the_queues(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Boom, Ok

    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    with use(runtime):
        Ok(0).dispatch()  # done before the server starts: its counters count from their start
    first = spawn_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory)
    assert first.wait(60) == 0, first.stderr()
    with serving(setup) as (base, _):
        status, body = get(f"{base}/healthz")
        assert (status, body) == (200, "ok\n")
        assert get(f"{base}/nothing")[0] == 404
        with use(runtime):
            for n in range(5):
                Ok(n).dispatch()
            for _ in range(2):
                Boom().dispatch()
            Ok(9).delay(600).dispatch()
        worker = spawn_qctl(["work", "--stop-when-empty", "--tries", "1", "--sleep", "0.1"], setup.directory)
        assert worker.wait(60) == 0, worker.stderr()
        scraped: list[Samples] = []

        def counted() -> bool:
            status, text = get(f"{base}/metrics")
            assert status == 200, text
            scraped.append(samples(text))
            ok = dict(connection="main", queue="default", **{"class": "qctl_testjobs.Ok"})
            boom = dict(connection="main", queue="default", **{"class": "qctl_testjobs.Boom"})
            return (value(scraped[-1], "qctl_jobs_processed_total", **ok) == 5
                    and value(scraped[-1], "qctl_jobs_failed_total", **boom) == 2)

        wait_for(counted, 30, interval=0.3, message="the counters to reach 5 processed and 2 failed")
    found = scraped[-1]
    ok = dict(connection="main", queue="default", **{"class": "qctl_testjobs.Ok"})
    assert value(found, "qctl_jobs_released_total", **ok) == 0
    assert value(found, "qctl_job_runtime_seconds_count", **ok) == 5
    assert value(found, "qctl_job_runtime_seconds_bucket", le="+Inf", **ok) == 5
    assert (value(found, "qctl_job_runtime_seconds_sum", **ok) or 0) > 0
    assert value(found, "qctl_job_wait_seconds_count", **ok) == 5
    for state, expected in (("ready", 0), ("delayed", 1), ("reserved", 0)):
        assert value(found, "qctl_queue_jobs", connection="main", queue="default", state=state) == expected
    assert value(found, "qctl_queue_oldest_job_age_seconds", connection="main", queue="default") == 0
    assert value(found, "qctl_failed_jobs", connection="main", queue="default") == 2
    assert value(found, "qctl_workers", state="working") == 0 and value(found, "qctl_read_errors") == 0


def test_metrics_prometheus_prints_the_exposition_from_what_the_store_holds(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    setup = setup_factory("sqlite")
    with use(runtime_factory(setup)):
        for n in range(3):
            Ok(n).dispatch()
    worker = spawn_qctl(["work", "--stop-when-empty", "--sleep", "0.1"], setup.directory)
    assert worker.wait(60) == 0, worker.stderr()
    with use(runtime_factory(setup)):
        Ok(7).dispatch()
    done = run_qctl(["metrics", "--prometheus"], setup.directory)
    assert done.returncode == 0, done.stderr
    found = samples(done.stdout)
    ok = dict(connection="main", queue="default", **{"class": "qctl_testjobs.Ok"})
    assert value(found, "qctl_jobs_processed_total", **ok) == 3
    assert value(found, "qctl_queue_jobs", connection="main", queue="default", state="ready") == 1
    age = value(found, "qctl_queue_oldest_job_age_seconds", connection="main", queue="default")
    assert age is not None and 0 <= age < 60
    names = {name for name, _ in found}
    assert {"qctl_workers", "qctl_job_runtime_seconds_bucket", "qctl_jobs_failed_total", "qctl_read_errors"} <= names
    only = samples(run_qctl(["metrics", "--prometheus", "--class", "nope"], setup.directory).stdout)
    assert value(only, "qctl_jobs_processed_total", **ok) is None


def hiding_prometheus_client(setup: TestSetup, *args: str) -> subprocess.CompletedProcess[str]:
    """`qctl ARGS` in a child process where `import prometheus_client` finds nothing."""
    code = ("import sys; sys.modules['prometheus_client'] = None; "
            "from qctl.cli import main; main(sys.argv[1:])")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=setup.directory, env=qctl_env(),
                          capture_output=True, text=True, timeout=60)


def test_without_the_extra_each_command_names_it_in_one_line(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    for args, command in ((["serve-metrics", "--port", "0"], "qctl serve-metrics"),
                          (["metrics", "--prometheus"], "qctl metrics --prometheus")):
        done = hiding_prometheus_client(setup, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip() == (f"error: {command} needs the prometheus_client package: "
                                       "pip install 'qctl[prometheus]'")
    assert run_qctl(["metrics"], setup.directory).returncode == 0  # the rest works without it


def test_serve_metrics_bad_input_is_one_line_and_exit_2(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    cases: list[tuple[list[str], Any]] = [
        (["serve-metrics", "--port", "70000"], "--port: expected 0 to 65535"),
        (["serve-metrics", "--port", "-1"], "--port: expected 0 to 65535"),
        (["serve-metrics", "--port", "http"], "Invalid value for '--port'"),
        (["serve-metrics", "nosuchconn"], "connections.nosuchconn: no such connection"),
        (["serve-metrics", "--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid:9808"),
        (["metrics", "--prometheus", "--json"], "--json and --prometheus: give one of them"),
    ]
    for args, expected in cases:
        done = run_qctl(args, setup.directory)
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len([line for line in done.stderr.splitlines() if line.startswith("error")]) <= 1
    with serving(setup) as (base, _):
        port = base.rsplit(":", 1)[1]
        done = run_qctl(["serve-metrics", "--port", port], setup.directory)
        assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
