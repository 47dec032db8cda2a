"""One worker process running many I/O-bound jobs at once: qctl `--concurrency N` against peers.

Every target is one worker process on a private `redis-server` (and, for qctl, on PostgreSQL too)
draining `--jobs` jobs that each wait `--nap` seconds, as an HTTP call would: `time.sleep` in a
thread (qctl `def handle`, Dramatiq's threads, Celery's `--pool threads`) or `await asyncio.sleep`
on an event loop (qctl `async def handle`, arq). Each job then INCRs one counter on the bench Redis;
the drain is timed from the first INCR to the last and counts the jobs after the first wave
(jobs − N), so a wave that was already running when the clock started is never credited. The
ideal rate of N slots is N / nap.

Also measured, in the same rounds: CPU-light no-op jobs with `--concurrency 8` against 1 (threads
must not cost the drain rate of one slot), and the memory of one worker at `--concurrency 32`
against 32 single-slot workers (RSS and USS of the process trees, each after running jobs).

    pip install -e '.[bench]'
    python bench/concurrency.py --jobs 2000 --rounds 3
    # options: --only "qctl redis threads 8,dramatiq threads 8"  --nap 0.05  --noop-jobs 5000  --no-rss
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
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BIN, Bench, stop, wait_until  # noqa: E402

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
QCTL_TOML = """default = "redis"
app = ["benchjobs"]

[connections.redis]
driver = "redis"
url = "{redis}"
block_for = 1

[connections.pg]
driver = "database"
url = "{postgres}"
table = "{table}"

[failed]
driver = "null"
"""


@dataclass(frozen=True)
class Target:
    system: str
    """qctl, dramatiq, celery or arq."""
    store: str
    """redis or pg (qctl only)."""
    kind: str
    """threads, async or noop."""
    slots: int

    @property
    def name(self) -> str:
        return f"{self.system} {self.store} {self.kind} {self.slots}"

    def command(self) -> list[str]:
        py = sys.executable
        if self.system == "qctl":
            return [py, "-m", "qctl", "work", self.store, "--sleep", "1", "--concurrency", str(self.slots)]
        if self.system == "dramatiq":
            return [str(BIN / "dramatiq"), "benchjobs.dramatiq_jobs", "--processes", "1", "--threads", str(self.slots)]
        if self.system == "celery":
            return [str(BIN / "celery"), "-A", "benchjobs.celery_jobs", "worker", "--pool=threads", "-c", str(self.slots),
                    "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        return [py, "-c", "from arq.worker import run_worker; from benchjobs.arq_jobs import WorkerSettings; "
                "run_worker(WorkerSettings)"]


TARGETS = [
    *(Target("qctl", store, kind, slots) for store in ("redis", "pg") for kind in ("threads", "async") for slots in (8, 32)),
    Target("dramatiq", "redis", "threads", 8),
    Target("celery", "redis", "threads", 8),
    Target("arq", "redis", "async", 8),
    Target("arq", "redis", "async", 32),
    *(Target("qctl", store, "noop", slots) for store in ("redis", "pg") for slots in (1, 8)),
]


class Run:
    def __init__(self, bench: Bench, table: str, nap: float) -> None:
        from qctl.config import ConnectionConfig
        from qctl.drivers.database import DatabaseDriver
        from qctl.drivers.redis import RedisDriver

        self.bench, self.nap = bench, nap
        self.drivers = {"redis": RedisDriver(ConnectionConfig("redis", "redis", bench.url)),
                        "pg": DatabaseDriver(ConnectionConfig("pg", "database", POSTGRES_URL, table=table))}

    def fill(self, target: Target, count: int) -> None:
        if target.system == "qctl":
            from benchjobs.qctl_jobs import AsyncNap, Incr, Nap

            from qctl.bus.payloads import build_envelope

            job = {"threads": lambda: Nap(self.nap), "async": lambda: AsyncNap(self.nap), "noop": Incr}[target.kind]
            payloads = [(build_envelope(job(), None).to_json(None), "default", 0.0) for _ in range(count)]
            for start in range(0, count, 1000):
                self.drivers[target.store].bulk(payloads[start:start + 1000])
            return
        self.bench.run_python(__file__, "--fill", target.system, str(count), str(self.nap))

    def measure(self, target: Target, count: int) -> dict[str, float]:
        self.bench.redis.flushall()
        self.fill(target, count)
        env = dict(self.bench.env, BENCH_ARQ_MAX_JOBS=str(target.slots))
        log = (self.bench.workdir / f"{target.system}-worker.log").open("ab")
        worker = subprocess.Popen(target.command(), cwd=self.bench.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            wait_until(lambda: self.bench.counter() >= 1, 120, f"{target.name}'s first job", interval=0.001)
            started = time.perf_counter()
            wait_until(lambda: self.bench.counter() >= count, 600, f"{target.name} draining", interval=0.002)
            elapsed = time.perf_counter() - started
            counted = count - (1 if target.kind == "noop" else target.slots)
            rate = counted / elapsed
            result = {"jobs_per_s": rate, **memory(worker.pid)}
            if target.kind != "noop":
                result["of_ideal"] = rate / (target.slots / self.nap)
            return result
        finally:
            stop(worker)

    def rss(self, workers: int, slots: int) -> dict[str, float]:
        """`workers` qctl processes of `slots` slots each, after every slot has run a nap job."""
        self.bench.redis.flushall()
        jobs = workers * slots * 2
        self.fill(Target("qctl", "redis", "threads", slots), jobs)
        command = Target("qctl", "redis", "threads", slots).command()
        started = [subprocess.Popen(command, cwd=self.bench.workdir, env=self.bench.env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(workers)]
        try:
            wait_until(lambda: self.bench.counter() >= jobs, 300, f"{workers} × {slots} draining")
            totals = [memory(process.pid) for process in started]
            return {"rss_mb": sum(t["rss_mb"] for t in totals), "uss_mb": sum(t["uss_mb"] for t in totals)}
        finally:
            for process in started:
                stop(process)

    def close(self) -> None:
        from sqlalchemy import text

        pg = self.drivers["pg"]
        with pg.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"DROP TABLE IF EXISTS {pg.table.name}"))  # type: ignore[attr-defined]
        for driver in self.drivers.values():
            driver.close()


def memory(pid: int) -> dict[str, float]:
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    infos = [process.memory_full_info() for process in tree]
    return {"rss_mb": sum(i.rss for i in infos) / 2**20, "uss_mb": sum(i.uss for i in infos) / 2**20}


def fill_peer(system: str, count: int, nap: float) -> None:
    """Run in a fresh process (each peer configures its broker at import): enqueue `count` nap jobs."""
    started = time.perf_counter()
    if system == "dramatiq":
        from benchjobs.dramatiq_jobs import nap as dramatiq_nap

        for _ in range(count):
            dramatiq_nap.send(nap)
    elif system == "celery":
        from benchjobs.celery_jobs import nap as celery_nap

        for _ in range(count):
            celery_nap.delay(nap)
    else:
        import asyncio

        from arq import create_pool
        from benchjobs.arq_jobs import REDIS

        async def enqueue() -> None:
            pool = await create_pool(REDIS)
            for _ in range(count):
                await pool.enqueue_job("nap", nap)
            await pool.aclose()

        asyncio.run(enqueue())
    print(json.dumps({"seconds": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--noop-jobs", type=int, default=5000)
    parser.add_argument("--nap", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated target names, e.g. 'qctl redis async 32'")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory comparison")
    parser.add_argument("--fill", nargs=3, metavar=("SYSTEM", "COUNT", "NAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        fill_peer(args.fill[0], int(args.fill[1]), float(args.fill[2]))
        return
    targets = [t for t in TARGETS if not args.only or t.name in args.only.split(",")]
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="qctl-bench-") as tmp:
        bench = Bench(args.jobs, Path(tmp), [])
        table = f"jobs_bench_{secrets.token_hex(4)}"
        (Path(tmp) / "qctl.toml").write_text(QCTL_TOML.format(redis=bench.url, postgres=POSTGRES_URL, table=table),
                                             encoding="utf-8")
        run = Run(bench, table, args.nap)
        try:
            for number in range(args.rounds):
                shift = number % len(targets)
                results = {t.name: run.measure(t, args.noop_jobs if t.kind == "noop" else args.jobs)
                           for t in targets[shift:] + targets[:shift]}
                if not args.no_rss:
                    results["rss 1 × 32"] = run.rss(1, 32)
                    results["rss 32 × 1"] = run.rss(32, 1)
                print(f"round {number + 1}: {json.dumps(results)}", file=sys.stderr, flush=True)
                rounds.append(results)
        finally:
            run.close()
            bench.close()
    medians = {name: {metric: statistics.median(r[name][metric] for r in rounds) for metric in rounds[0][name]}
               for name in rounds[0]}
    print(json.dumps({"medians": medians, "ratios": ratios(medians), "load_average": os.getloadavg()}, indent=2))


def ratios(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    def rate(name: str) -> float | None:
        return medians[name]["jobs_per_s"] if name in medians else None

    found: dict[str, float] = {}
    pairs = [("qctl redis threads 8", "dramatiq redis threads 8"), ("qctl redis threads 8", "celery redis threads 8"),
             ("qctl redis async 8", "arq redis async 8"), ("qctl redis async 32", "arq redis async 32"),
             ("qctl redis noop 8", "qctl redis noop 1"), ("qctl pg noop 8", "qctl pg noop 1")]
    for ours, theirs in pairs:
        a, b = rate(ours), rate(theirs)
        if a is not None and b is not None:
            found[f"{ours} ÷ {theirs}"] = a / b
    if "rss 1 × 32" in medians and "rss 32 × 1" in medians:
        for metric in ("rss_mb", "uss_mb"):
            found[f"{metric}: 1 × 32 ÷ 32 × 1"] = medians["rss 1 × 32"][metric] / medians["rss 32 × 1"][metric]
    return found


if __name__ == "__main__":
    main()
