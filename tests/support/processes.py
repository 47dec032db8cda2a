"""Real `qctl` processes for tests: the CLI as users run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures"

# Job slots every `qctl work` a test starts gets: the `worker_slots` fixture sets it for suites that
# must hold with one slot and with eight (`pytestmark = pytest.mark.usefixtures("worker_slots")`);
# QCTL_TEST_WORKER_SLOTS=8 runs every other test's workers with eight too.
worker_slots = int(os.environ.get("QCTL_TEST_WORKER_SLOTS", "1"))


def with_slots(args: Sequence[str]) -> list[str]:
    """`args`, with `--concurrency` added to a `work` command when a test runs with several slots."""
    command = list(args)
    if worker_slots > 1 and "work" in command[:3] and "--concurrency" not in command:
        command += ["--concurrency", str(worker_slots)]
    return command


def qctl_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FIXTURES), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("QCTL_CONFIG", None)
    env.pop("QCTL_CONNECTION", None)
    env.pop("QCTL_KEY", None)
    env.pop("QCTL_FAILED_DRIVER", None)
    env.update(extra or {})
    return env


def run_qctl(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `qctl ARGS` to completion (python -m qctl, so the installed package is what runs)."""
    return subprocess.run(
        [sys.executable, "-m", "qctl", *with_slots(args)], cwd=cwd, env=qctl_env(env), capture_output=True, text=True,
        timeout=timeout, input=input,
    )


@dataclass
class WorkerProcess:
    process: subprocess.Popen[str]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


def spawn_qctl(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, name: str = "worker") -> WorkerProcess:
    """Start `qctl ARGS` in its own process group, output captured to files in `cwd`."""
    stamp = f"{name}-{time.monotonic_ns()}"
    out, err = cwd / f"{stamp}.out", cwd / f"{stamp}.err"
    process = subprocess.Popen(
        [sys.executable, "-m", "qctl", *with_slots(args)], cwd=cwd, env=qctl_env(env), text=True,
        stdout=out.open("w"), stderr=err.open("w"), start_new_session=True,
    )
    return WorkerProcess(process, out, err)


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll until `predicate()` is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def read_ledger(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split() for line in lines if line.strip()]
