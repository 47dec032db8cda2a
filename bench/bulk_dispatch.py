"""Bulk dispatch next to single dispatch, on Redis and PostgreSQL, in the same run.

Every measurement runs in a fresh process (`--child`): it loads the bench config, dispatches one
job to connect and import, then times N jobs either way, job instances built inside the timing:

- single: `Noop().dispatch()` N times;
- bulk: `Queue.bulk([Noop() for _ in range(N)])` once.

After each measurement the parent checks that exactly N jobs (plus the warm-up one) were queued
and clears the queue. Rounds are interleaved (the four measurements in a rotated order each round)
and the report gives the medians and the bulk ÷ single ratios of those medians, with the CPU
time per job of the dispatching process (steadier than wall time on a busy machine).

    python bench/bulk_dispatch.py [--jobs 10000] [--rounds 3] [--only redis,postgresql] [--key]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MODES = ("single", "bulk")


def config_text(token: str, key: bool) -> str:
    from qctl.payload.signing import generate_key

    return (
        'default = "redis"\napp = ["qctl_bench_jobs"]\n'
        + (f'key = "{generate_key()}"\n' if key else "")
        + f'\n[connections.redis]\ndriver = "redis"\nurl = "{REDIS_URL}"\nprefix = "qctl-bulk-{token}:"\n'
        f'\n[connections.postgresql]\ndriver = "database"\nurl = "{POSTGRES_URL}"\ntable = "jobs_bulk_{token}"\n'
        '\n[failed]\ndriver = "null"\n'
    )


def child(target: str, mode: str, jobs: int) -> None:
    """Time `jobs` dispatches of one kind on one connection; print JSON (seconds, CPU seconds)."""
    from qctl_bench_jobs import Noop

    from qctl import Queue

    Noop().on_connection(target).dispatch()  # connect, create the table, import, outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "single":
        for _ in range(jobs):
            Noop().on_connection(target).dispatch()
    else:
        Queue.bulk([Noop().on_connection(target) for _ in range(jobs)])
    print(json.dumps({"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}))


class Bench:
    def __init__(self, directory: Path, jobs: int, key: bool) -> None:
        self.directory = directory
        self.jobs = jobs
        self.token = secrets.token_hex(4)
        (directory / "qctl.toml").write_text(config_text(self.token, key), encoding="utf-8")
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p))
        for name in ("QCTL_CONFIG", "QCTL_CONNECTION", "QCTL_KEY", "QCTL_FAILED_DRIVER"):
            self.env.pop(name, None)
        from qctl import config
        from qctl.runtime import Runtime

        self.runtime = Runtime(config.load(directory / "qctl.toml"))

    def measure(self, target: str, mode: str) -> dict[str, float]:
        done = subprocess.run([sys.executable, __file__, "--child", target, mode, str(self.jobs)], cwd=self.directory,
                              env=self.env, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{target} {mode}: {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        driver = self.runtime.connections.get(target)
        queued = driver.size(driver.default_queue)
        if queued != self.jobs + 1:
            raise SystemExit(f"{target} {mode}: {queued} jobs queued, expected {self.jobs + 1}")
        driver.clear(driver.default_queue)
        return {"per_s": self.jobs / result["seconds"], "cpu_us": result["cpu_seconds"] / self.jobs * 1e6}

    def close(self) -> None:
        from sqlalchemy import text

        from qctl.db.engines import get_engine

        self.runtime.close()
        with get_engine(POSTGRES_URL).begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS jobs_bulk_{self.token}"))


def report(rounds: list[dict[str, dict[str, float]]], targets: list[str]) -> dict[str, object]:
    medians = {name: {m: statistics.median(r[name][m] for r in rounds) for m in ("per_s", "cpu_us")} for name in rounds[0]}
    ratios = {f"{t}_bulk_vs_single": medians[f"{t} bulk"]["per_s"] / medians[f"{t} single"]["per_s"] for t in targets}
    return {"medians": medians, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="redis,postgresql")
    parser.add_argument("--key", action="store_true", help="sign payloads (an app key in the config)")
    parser.add_argument("--child", nargs=3, metavar=("TARGET", "MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    targets = args.only.split(",")
    order = [(target, mode) for target in targets for mode in MODES]
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="qctl-bench-bulk-") as tmp:
        bench = Bench(Path(tmp), args.jobs, args.key)
        try:
            for number in range(args.rounds):
                rotated = order[number % len(order):] + order[:number % len(order)]
                results = {f"{target} {mode}": bench.measure(target, mode) for target, mode in rotated}
                print(f"round {number + 1}: {json.dumps(results)}", file=sys.stderr, flush=True)
                rounds.append(results)
        finally:
            bench.close()
    summary = report(rounds, targets)
    summary["load_average"] = os.getloadavg()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
