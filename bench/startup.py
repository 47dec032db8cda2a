"""Start-up: `qctl --version` and `qctl --help`, and spawn → first job of a worker (qctl and the peers).

- CLI: the installed console script beside this interpreter, so what is timed is what a user types
  (and, for scale, a bare interpreter). With `hyperfine` on PATH it also runs hyperfine.
- Worker: one job is queued, then a worker process is spawned; the time is from the spawn to the
  job's first effect (an INCR on a private redis-server, or a file the job creates), polled every
  millisecond; then the worker is stopped. Targets: qctl on Redis with the config a new user writes
  (`default = "redis"`, one connection, nothing else: no cache, failed or batching section), qctl on
  SQLite (the built-in default connection), and each peer of `run.py` that is installed beside this
  interpreter. `--baseline-python PATH` adds qctl from another environment (another checkout) as
  `qctl-baseline`, so before and after are measured in the same rounds.

Rounds are interleaved (every target once per round, in a rotated order), after one warm-up round
that is not counted; the figures are medians. Every child runs with bytecode caching on, in a
private `PYTHONPYCACHEPREFIX` (an installed package has its .pyc files; a shell that sets
PYTHONDONTWRITEBYTECODE would otherwise time compiling every module from source, peers' too).

    python bench/startup.py [--rounds 5] [--cli-runs 40] [--baseline-python ../main/.venv/bin/python]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import HERE, PEERS, Bench, stop, wait_until, worker_command

REDIS_ONLY_TOML = """default = "redis"
app = ["benchjobs"]

[connections.redis]
driver = "redis"
url = "{url}"
block_for = 5
"""
SQLITE_TOML = 'app = ["benchjobs"]\n'
PEER_MODULES = {"huey": "huey", "rq": "rq", "dramatiq": "dramatiq", "celery": "celery", "arq": "arq"}


def console_script() -> str:
    beside = Path(sys.executable).with_name("qctl")
    return str(beside) if beside.exists() else (shutil.which("qctl") or "qctl")


def child_env(workdir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with bytecode cached under `workdir`, as an installed package has it."""
    made = dict(os.environ if env is None else env, PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    made.pop("PYTHONDONTWRITEBYTECODE", None)
    return made


def timed_runs(command: list[str], runs: int, cwd: Path) -> list[float]:
    env = child_env(cwd)
    for _ in range(3):  # warm the page cache and .pyc files
        subprocess.run(command, check=True, capture_output=True, cwd=cwd, env=env)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=cwd, env=env)
        times.append(time.perf_counter() - started)
    return times


def cli_figures(runs: int, cwd: Path) -> dict[str, float]:
    commands = {
        "qctl --version": [console_script(), "--version"],
        "qctl --help": [console_script(), "--help"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
    }
    # Interleaved, so a burst of load from elsewhere hits every command alike.
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(1, runs // 10)):
        for name, command in commands.items():
            samples[name] += timed_runs(command, 10, cwd)
    for name, times in samples.items():
        print(f"{name:26} median {statistics.median(times) * 1000:6.1f} ms  "
              f"min {min(times) * 1000:6.1f} ms  ({len(times)} runs)")
    if shutil.which("hyperfine"):
        subprocess.run(["hyperfine", "-N", "--warmup", "5", "--runs", str(runs), f"{console_script()} --version",
                        f"{console_script()} --help"], check=False, cwd=cwd, env=child_env(cwd))
    return {name: statistics.median(times) for name, times in samples.items()}


class Startup:
    """Spawn → first job for each target, on one private redis-server (run.py's) and a SQLite file."""

    def __init__(self, workdir: Path, baseline_python: str | None) -> None:
        self.bench = Bench(1, workdir / "redis", [])
        self.bench.env = child_env(workdir, self.bench.env)
        (workdir / "redis" / "qctl.toml").write_text(REDIS_ONLY_TOML.format(url=self.bench.url), encoding="utf-8")
        self.sqlite_dir = workdir / "sqlite"
        self.sqlite_dir.mkdir()
        (self.sqlite_dir / "qctl.toml").write_text(SQLITE_TOML, encoding="utf-8")
        self.baseline_python = baseline_python
        self.marker = self.sqlite_dir / "ran"

    def targets(self) -> list[str]:
        found = ["qctl redis", "qctl sqlite"]
        if self.baseline_python:
            found += ["qctl-baseline redis", "qctl-baseline sqlite"]
        return found + [p for p in PEERS if importlib.util.find_spec(PEER_MODULES[p]) is not None]

    def measure(self, target: str) -> float:
        system, _, store = target.partition(" ")
        python = self.baseline_python if system == "qctl-baseline" else sys.executable
        if store == "sqlite":
            return self.qctl_on_sqlite(str(python))
        self.bench.redis.flushall()
        self.bench.run_python(str(HERE / "enqueue.py"), system.split("-")[0], "1")  # exactly one job
        if system.startswith("qctl"):
            command = [str(python), "-m", "qctl", "work", "redis"]
        else:
            command = worker_command(system, self.bench.url, [])
        return self.spawn_until(command, self.bench.workdir, lambda: self.bench.counter() >= 1)

    def qctl_on_sqlite(self, python: str) -> float:
        self.marker.unlink(missing_ok=True)
        subprocess.run([python, "-c", f"from benchjobs.qctl_jobs import Touch; Touch({str(self.marker)!r}).dispatch()"],
                       cwd=self.sqlite_dir, env=self.bench.env, check=True, timeout=120)
        return self.spawn_until([python, "-m", "qctl", "work", "--sleep", "0.01"], self.sqlite_dir, self.marker.exists)

    def spawn_until(self, command: list[str], cwd: Path, ran: object) -> float:
        log = (cwd / "worker.log").open("ab")
        started = time.perf_counter()
        worker = subprocess.Popen(command, cwd=cwd, env=self.bench.env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            wait_until(ran, 120, f"{command[:4]}'s first job", interval=0.001)
            return time.perf_counter() - started
        finally:
            stop(worker)
            log.close()

    def close(self) -> None:
        self.bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cli-runs", type=int, default=40, help="runs of each CLI command (0: skip them)")
    parser.add_argument("--baseline-python", help="an interpreter with another qctl installed, measured beside")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qctl-startup-") as tmp:
        workdir = Path(tmp)
        figures: dict[str, object] = {}
        if args.cli_runs:
            figures["cli_s"] = cli_figures(args.cli_runs, workdir)
        (workdir / "redis").mkdir()
        startup = Startup(workdir, args.baseline_python)
        rounds: list[dict[str, float]] = []
        try:
            targets = startup.targets()
            for target in targets:  # the warm-up round: bytecode written, files in the page cache
                startup.measure(target)
            for number in range(args.rounds):
                rotated = targets[number % len(targets):] + targets[:number % len(targets)]
                result = {target: startup.measure(target) for target in rotated}
                print(f"round {number + 1}: {json.dumps(result)}", file=sys.stderr, flush=True)
                rounds.append(result)
        finally:
            startup.close()
    medians = {target: statistics.median(r[target] for r in rounds) for target in rounds[0]}
    figures["spawn_to_first_job_s"] = medians
    peers = [medians[p] for p in PEERS if p in medians]
    if peers:
        figures["qctl_redis_vs_fastest_peer"] = medians["qctl redis"] / min(peers)
    figures["load_average"] = os.getloadavg()
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps({**figures, "rounds": rounds}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
