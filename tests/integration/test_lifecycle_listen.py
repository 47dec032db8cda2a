"""`qctl listen`: code changes are picked up without a restart; --per-job gives every job a fresh process."""

from __future__ import annotations

import importlib
import os
import signal
from pathlib import Path

import psutil

from qctl.runtime import use
from tests.support.lifecycle import ends, phases, started
from tests.support.processes import run_qctl, spawn_qctl, wait_for

JOB_MODULE = '''
import os
from qctl import Job

class Say(Job):
    def __init__(self, out: str) -> None:
        self.out = out

    def handle(self) -> None:
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(f"{VERSION} {os.getpid()}\\n")

VERSION = "v1"
'''


def write_module(path: Path, text: str) -> None:
    """Write and move the mtime on by a second, so the change shows even within one clock tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def said(out: Path) -> list[list[str]]:
    return [line.split() for line in out.read_text().splitlines()] if out.exists() else []


def test_listen_runs_changed_code_and_survives_a_broken_edit(setup_factory, runtime_factory, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    name = f"listen_jobs_{os.getpid()}_{tmp_path.name[-8:]}".replace("-", "_")
    setup = setup_factory("sqlite", app=("qctl_testjobs", name))
    module = setup.directory / f"{name}.py"
    write_module(module, JOB_MODULE)
    monkeypatch.syspath_prepend(str(setup.directory))
    say = importlib.import_module(name).Say
    runtime = runtime_factory(setup)
    out = tmp_path / "said"
    listener = spawn_qctl(["listen", "--sleep", "0.2", "--poll", "0.2"], setup.directory, name="listen")
    with use(runtime):
        say(str(out)).dispatch()
    wait_for(lambda: len(said(out)) == 1, 30, message="the first job")

    write_module(module, JOB_MODULE.replace('"v1"', '"v2"'))
    wait_for(lambda: "worker restarted on the new code" in listener.stderr(), 20, message="the listener to notice")
    with use(runtime):
        say(str(out)).dispatch()
    wait_for(lambda: len(said(out)) == 2, 30, message="the second job")
    assert [line[0] for line in said(out)] == ["v1", "v2"]
    assert said(out)[0][1] != said(out)[1][1]  # a fresh worker process ran the new code

    write_module(module, "this is not python (\n")
    wait_for(lambda: "waiting for a source change" in listener.stderr(), 30, message="the broken worker to be reported")
    write_module(module, JOB_MODULE.replace('"v1"', '"v3"'))
    with use(runtime):
        say(str(out)).dispatch()
    wait_for(lambda: len(said(out)) == 3, 30, message="the job after the fix")
    assert said(out)[2][0] == "v3"

    children = psutil.Process(listener.pid).children(recursive=True)
    listener.signal(signal.SIGTERM)
    assert listener.wait(timeout=15) == 0, listener.stderr()
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)


def test_per_job_runs_each_job_in_a_fresh_process_and_sigterm_lets_the_last_finish(setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok, Sleep

    setup = setup_factory("sqlite")
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    with use(runtime):
        quick = [Ok(n, str(ledger)).dispatch() for n in range(2)]
    listener = spawn_qctl(["listen", "--per-job", "--sleep", "0.2"], setup.directory, name="listen")
    wait_for(lambda: set(ends(ledger)) == set(quick), 60, message="two jobs")
    assert len({fields[3] for fields in phases(ledger, "end")}) == 2  # one process per job
    with use(runtime):
        slow = Sleep(2, str(ledger)).dispatch()
    wait_for(lambda: slow in started(ledger), 30, message="the slow job to start")
    listener.signal(signal.SIGTERM)
    assert listener.wait(timeout=15) == 0, listener.stderr()
    assert ends(ledger)[slow] == 1


def test_per_job_refuses_options_that_end_the_worker(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    result = run_qctl(["listen", "--per-job", "--max-jobs", "5"], setup.directory)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --per-job runs one job per process")
