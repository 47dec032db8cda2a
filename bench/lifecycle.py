"""Worker lifecycle figures: idle RSS, RSS after many no-op jobs, and how long `qctl restart` takes to cycle a pool.

    python bench/lifecycle.py [--jobs 100000] [--pool 4] [--rounds 3] [--sleep 3] [--url URL]

--jobs 0 or --rounds 0 skips that part. Both figures depend on the machine's load:
the load average is printed with them.

Everything runs in a temporary project (SQLite by default; --url points the queue
and cache at a server instead) with real `qctl work` / `qctl supervise` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

JOBS_MODULE = "lifecycle_bench_jobs"
JOB_SOURCE = "from qctl import Job\n\n\nclass Noop(Job):\n    def handle(self) -> None:\n        pass\n"
CHUNK = 5_000


def make_project(directory: Path, url: str | None) -> None:
    db = url or f"sqlite:///{directory}/bench.sqlite"
    (directory / f"{JOBS_MODULE}.py").write_text(JOB_SOURCE, encoding="utf-8")
    suffix = f"{int(time.time())}"
    (directory / "qctl.toml").write_text(
        f'default = "main"\napp = ["{JOBS_MODULE}"]\n\n[connections.main]\ndriver = "database"\nurl = "{db}"\n'
        f'table = "bench_jobs_{suffix}"\nretry_after = 90\n\n[failed]\nurl = "{db}"\ntable = "bench_failed_{suffix}"\n\n'
        f'[cache]\nurl = "{db}"\ntable = "bench_cache_{suffix}"\n', encoding="utf-8")


def runtime_for(directory: Path) -> Any:
    sys.path.insert(0, str(directory))
    from qctl import config
    from qctl.runtime import Runtime

    return Runtime(config.load(directory / "qctl.toml"))


def qctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "qctl", *args]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def rss_mb(pid: int, samples: int = 5) -> float:
    readings = []
    for _ in range(samples):
        readings.append(psutil.Process(pid).memory_info().rss / (1024 * 1024))
        time.sleep(0.1)
    return statistics.median(readings)


def push_noops(runtime: Any, count: int) -> None:
    from lifecycle_bench_jobs import Noop  # type: ignore[import-not-found]

    from qctl.bus.payloads import build_envelope

    driver = runtime.connections.get()
    for start in range(0, count, CHUNK):
        items = [(build_envelope(Noop(), None).to_json(None), "default", 0.0) for _ in range(min(CHUNK, count - start))]
        driver.bulk(items)


def measure_memory(directory: Path, runtime: Any, jobs: int) -> dict[str, float]:
    from qctl.worker.registry import read_records

    worker = subprocess.Popen(qctl("work", "--sleep", "0.2", "--memory", "0"), cwd=directory)
    try:
        wait_until(lambda: [r.state for r in read_records(runtime.cache)] == ["idle"], 60, "an idle worker")
        time.sleep(1)
        idle = rss_mb(worker.pid)
        push_noops(runtime, jobs)
        driver = runtime.connections.get()
        started = time.monotonic()
        wait_until(lambda: driver.size("default") <= jobs - 1_000, 600, "the first 1,000 jobs", interval=0.2)
        warm = rss_mb(worker.pid, samples=1)
        wait_until(lambda: driver.size("default") == 0, 3600, "the queue to drain", interval=0.2)
        took = time.monotonic() - started
        time.sleep(1)
        after = rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
    return {"idle_rss_mb": idle, "rss_after_1000_mb": warm, "rss_after_all_mb": after, "jobs": jobs,
            "growth_vs_idle_percent": (after - idle) / idle * 100, "growth_vs_warm_percent": (after - warm) / warm * 100,
            "jobs_per_second": jobs / took}


def pool_pids(supervise: subprocess.Popen[bytes]) -> set[int]:
    pids = set()
    for child in psutil.Process(supervise.pid).children(recursive=True):
        try:
            if " work" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                pids.add(child.pid)
        except psutil.Error:
            continue
    return pids


def fresh(pids: set[int], old: set[int]) -> set[int]:
    return pids if pids and not pids & old else set()


def measure_restart(directory: Path, runtime: Any, pool: int, rounds: int, sleep: float) -> dict[str, Any]:
    from qctl.worker.registry import read_records

    supervise = subprocess.Popen(qctl("supervise", "--numprocs", str(pool), "--sleep", f"{sleep:g}"), cwd=directory,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready() -> set[int]:
        pids = pool_pids(supervise)
        beating = {r.pid for r in read_records(runtime.cache) if r.state == "idle"}
        return pids if len(pids) == pool and pids <= beating else set()

    results = []
    try:
        for _ in range(rounds):
            before = wait_until(ready, 120, f"{pool} idle workers")
            time.sleep(2)
            t0 = time.monotonic()
            subprocess.run(qctl("restart"), cwd=directory, check=True, capture_output=True)
            stamped = time.monotonic()
            wait_until(lambda old=before: not pool_pids(supervise) & old, 120, "the old workers to exit")
            gone = time.monotonic()
            after = wait_until(lambda old=before: fresh(ready(), old), 120, "the new workers")
            back = time.monotonic()
            assert len(after) == pool
            results.append({"command_seconds": stamped - t0, "all_gone_seconds": gone - t0, "all_back_seconds": back - t0})
    finally:
        supervise.terminate()
        supervise.wait(60)
    keys = results[0].keys()
    return {"pool": pool, "worker_sleep": sleep, "rounds": results,
            "median": {k: statistics.median(r[k] for r in results) for k in keys}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=3.0, help="the pool's --sleep (qctl's default is 3)")
    parser.add_argument("--url", help="SQLAlchemy URL for queue and cache (default: SQLite in the temp project)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qctl-bench-") as tmp:
        directory = Path(tmp)
        make_project(directory, args.url)
        runtime = runtime_for(directory)
        if args.jobs:
            memory = measure_memory(directory, runtime, args.jobs)
            print(json.dumps({"memory": memory, "load_average": os.getloadavg()}, indent=2), flush=True)
        if args.rounds:
            restart = measure_restart(directory, runtime, args.pool, args.rounds, args.sleep)
            print(json.dumps({"restart": restart, "load_average": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
