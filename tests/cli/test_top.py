"""`qctl top`: one frame with `--once` on every driver, and the live screen as a person sees it,
under tmux at 80×24 (read with `capture-pane`, quit with q and with Ctrl-C)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qctl.runtime import use
from tests.support.configs import TestSetup
from tests.support.lifecycle import FAST_HEARTBEAT
from tests.support.processes import WorkerProcess, qctl_env, run_qctl, spawn_qctl, wait_for
from tests.support.services import in_ci

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
FAILED_UUID = "0b5d6a8e-0000-4000-8000-00000000f00d"


def prepare(setup: TestSetup, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    """Two jobs waiting on `default`, a long one for the worker on `slow`, one failed job."""
    from qctl_testjobs import Ok, Sleep

    runtime = runtime_factory(setup)
    with use(runtime):
        Ok(1).dispatch()
        Ok(2).delay(600).dispatch()
        Sleep(300).on_queue("slow").dispatch()
    runtime.failed_store.log("main", "default", b'{"displayName": "app.jobs.Ship"}',
                             "RuntimeError: carrier down\nTraceback line", FAILED_UUID)


@contextmanager
def busy_worker(setup: TestSetup) -> Iterator[WorkerProcess]:
    worker = spawn_qctl(["work", "--queue", "slow", "--name", "busybee", "--sleep", "0.2"], setup.directory,
                        env=FAST_HEARTBEAT)
    try:
        yield worker
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # its job sleeps for minutes
        worker.wait(30)


def once(setup: TestSetup, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_qctl(["top", "--once", *args], setup.directory, env={"COLUMNS": "80", **(env or {})})


def row(screen: str, first: str) -> list[str]:
    """The cells of the screen's line that starts with `first` (none when there is no such line)."""
    return next((line.split() for line in screen.splitlines() if line.startswith(first)), [])


def shows_everything(screen: str) -> bool:
    """The queued job (1 ready on default), the busy worker on its Sleep job, and the failure."""
    worker = row(screen, "busybee")
    return (row(screen, "main:default")[1:2] == ["1"] and worker[1:3] == ["working", "Sleep"]
            and FAILED_UUID in screen and "RuntimeError: carrier down" in screen)


@pytest.mark.parametrize("kind", KINDS)
def test_top_once_shows_a_queued_job_a_busy_worker_and_a_failure(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    prepare(setup, runtime_factory)
    with busy_worker(setup):
        frames: list[str] = []

        def complete() -> bool:
            done = once(setup)
            assert done.returncode == 0, done.stderr
            frames.append(done.stdout)
            return shows_everything(done.stdout)

        wait_for(complete, 30, interval=0.3, message="the worker in `top --once`")
    screen = frames[-1]
    assert row(screen, "main:default")[1:5] == ["1", "1", "0", "1"]  # ready, delayed, reserved, failed
    assert row(screen, "main:slow")[1:4] == ["0", "0", "1"]  # its one job reserved by the worker
    assert re.fullmatch(r"\d+M", row(screen, "busybee")[5])  # name state class id for RSS: its RSS in MB
    assert "Ship" in screen and "Traceback line" not in screen  # the error's first line only
    assert "refreshes every second" not in screen  # --once: no live hints


def test_top_once_is_plain_text_within_80_columns_with_no_color(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    from qctl_testjobs import Ok

    from qctl import Bus

    setup = setup_factory("sqlite")
    prepare(setup, runtime_factory)
    with use(runtime_factory(setup)):
        Bus.batch([Ok(3), Ok(4)]).name("Import").dispatch()
    done = once(setup, env={"NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines()), done.stdout
    [batch] = [line for line in done.stdout.splitlines() if "Import" in line]
    assert "0%" in batch and "0/2" in batch
    assert "Workers: none running" in done.stdout


def test_top_bad_input_is_one_line_and_exit_2(setup_factory) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("sqlite")
    for args, expected in ((["nosuchconn"], "connections.nosuchconn: no such connection"),
                           (["--queue", ","], "--queue: expected one or more queue names")):
        for mode in (["--once"], []):
            done = run_qctl(["top", *mode, *args], setup.directory)
            assert done.returncode == 2 and expected in done.stderr, done.stderr
            assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    done = run_qctl(["top"], setup.directory)  # stdout a pipe: no screen to draw on
    assert done.returncode == 2 and done.stderr == "error: qctl top draws on a terminal; --once prints one frame\n"


# --- the live screen, under tmux ---------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket) holding one 80×24 session."""

    def __init__(self) -> None:
        self.socket = f"qctl-top-{os.getpid()}-{id(self)}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30)

    def start(self, directory: Path, command: str) -> None:
        done = self.run("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", "-c", str(directory), command)
        assert done.returncode == 0, done.stderr

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys: str) -> None:
        assert self.run("send-keys", "-t", "top", *keys).returncode == 0

    def close(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:  # as a server test: skipped on a laptop, a failure in CI
        message = "tmux is not installed (apt-get install tmux): the live `qctl top` test needs it"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    server = Tmux()
    try:
        yield server
    finally:
        server.close()


def top_in_a_shell() -> str:
    """`qctl top`, then the exit status and whether the terminal is back in canonical mode."""
    env = qctl_env({**FAST_HEARTBEAT, "TERM": "xterm-256color"})
    exports = " ".join(f"{name}={shlex.quote(env[name])}" for name in ("PYTHONPATH", "PATH", "TERM", "HOME") if name in env)
    script = (f"env {exports} {shlex.quote(sys.executable)} -m qctl top; echo exit=$?; "
              "stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon; sleep 60")
    return f"bash -c {shlex.quote(script)}"  # bash goes on after a child that handled Ctrl-C


@pytest.mark.parametrize("quit_with", ["q", "C-c"])
def test_top_under_tmux_shows_the_queues_the_busy_worker_and_the_failure(  # type: ignore[no-untyped-def]
        setup_factory, runtime_factory, tmux: Tmux, quit_with: str) -> None:
    setup = setup_factory("sqlite")
    prepare(setup, runtime_factory)
    with busy_worker(setup):
        tmux.start(setup.directory, top_in_a_shell())
        try:
            wait_for(lambda: shows_everything(tmux.screen()), 30, interval=0.2, message="the full dashboard in tmux")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{tmux.screen()}") from None
        screen = tmux.screen()
        assert "refreshes every second, q quits" in screen
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        first_clock = lines[0].split()[2]
        wait_for(lambda: tmux.screen().splitlines()[0].split()[2] != first_clock, 10, interval=0.2,
                 message="the next refresh")
        tmux.keys(quit_with)
        wait_for(lambda: "exit=0" in tmux.screen(), 10, interval=0.1, message="top to exit")
    after = tmux.screen()
    assert "icanon" in after.split() and "-icanon" not in after.split(), after  # the terminal is restored
