"""Benchmark qctl against Huey, RQ, Dramatiq, Celery and arq on one private Redis.

Every round runs every system once, in a rotated order (interleaved), and the report gives
the median of the rounds. Per system: N single-call enqueues (timed in a fresh process),
then one worker process drains the N no-op jobs (each INCRs one counter); the drain is timed
from the first INCR to the N-th. The floor is a plain redis-py loop of N INCR round trips.
Also measured: qctl's dispatch → handle() latency with an idle worker blocked on the queue.

    pip install -e '.[bench]'
    python bench/run.py --jobs 10000 --rounds 3 --out bench-results.json
    python bench/run.py --jobs 10000 --rounds 3 --hog        # with one core kept busy by a CPU hog
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PEERS = ("huey", "rq", "dramatiq", "celery", "arq")  # each without per-job logging, as qctl without -v
AT_LEAST_ONCE_PEERS = ("dramatiq", "celery", "arq")  # keep a job until it is done (Huey and RQ do not re-run it)
QCTL_TOML = """default = "redis"
app = ["benchjobs"]

[connections.redis]
driver = "redis"
url = "{url}"
block_for = 5
busy_poll_us = {busy_poll_us}

[failed]
driver = "null"
"""


def worker_command(system: str, url: str, qctl_args: list[str]) -> list[str]:
    py = sys.executable
    return {
        "qctl": [py, "-m", "qctl", "work", "redis", "--sleep", "1", *qctl_args],
        "huey": [py, "-m", "huey.bin.huey_consumer", "benchjobs.huey_jobs.huey", "-w", "1", "-k", "thread", "-q"],
        "rq": [str(BIN / "rq"), "worker", "--url", url, "-w", "rq.worker.SimpleWorker", "-q",
               "--logging_level", "WARNING"],
        "dramatiq": [str(BIN / "dramatiq"), "benchjobs.dramatiq_jobs", "--processes", "1"],
        "celery": [str(BIN / "celery"), "-A", "benchjobs.celery_jobs", "worker", "--pool=solo", "-l", "warning",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"],
        # arq's CLI logs every job at INFO; run_worker without it logs warnings only, like the others here
        "arq": [py, "-c", "from arq.worker import run_worker; from benchjobs.arq_jobs import WorkerSettings; "
                "run_worker(WorkerSettings)"],
    }[system]


class Bench:
    def __init__(self, jobs: int, workdir: Path, qctl_args: list[str], busy_poll_us: int = 100) -> None:
        self.jobs = jobs
        self.qctl_args = qctl_args
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env = dict(os.environ, BENCH_REDIS_URL=self.url,
                        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        for name in ("QCTL_CONFIG", "QCTL_CONNECTION", "QCTL_KEY", "QCTL_FAILED_DRIVER"):
            self.env.pop(name, None)
        (workdir / "qctl.toml").write_text(QCTL_TOML.format(url=self.url, busy_poll_us=busy_poll_us), encoding="utf-8")
        self.server = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.redis = redis.Redis.from_url(self.url)
        wait_until(lambda: self._ping(), 20, "the bench redis-server")

    def _ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.ConnectionError:
            return False

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=20)

    def run_python(self, *args: str) -> dict[str, float]:
        done = subprocess.run([sys.executable, *args], cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{args}: {done.stderr.strip()[-2000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def enqueue(self, system: str) -> dict[str, float]:
        result = self.run_python(str(HERE / "enqueue.py"), system, str(self.jobs))
        return {"enqueue_per_s": result["calls"] / result["seconds"],
                "enqueue_cpu_us": result["cpu_seconds"] / result["calls"] * 1e6}

    def start_worker(self, system: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{system}-worker.log").open("ab")
        return subprocess.Popen(worker_command(system, self.url, self.qctl_args), cwd=self.workdir, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def drain(self, system: str) -> dict[str, float]:
        """N jobs already queued; one worker; from the first INCR to the N-th. CPU time per job of the
        worker (its process tree) and of redis-server too: unlike the rate, it barely moves with the
        machine's load."""
        worker = self.start_worker(system)
        try:
            wait_until(lambda: self.counter() >= 1, 120, f"{system}'s first job", interval=0.001)
            started, cpu_before = time.perf_counter(), self.cpu_seconds(worker.pid)
            wait_until(lambda: self.counter() >= self.jobs, 600, f"{system} draining", interval=0.005)
            elapsed, cpu_after = time.perf_counter() - started, self.cpu_seconds(worker.pid)
            jobs = self.jobs - 1
            return {
                "drain_per_s": jobs / elapsed,
                "worker_cpu_us_per_job": (cpu_after[0] - cpu_before[0]) / jobs * 1e6,
                "redis_cpu_us_per_job": (cpu_after[1] - cpu_before[1]) / jobs * 1e6,
            }
        finally:
            stop(worker)

    def cpu_seconds(self, worker_pid: int) -> tuple[float, float]:
        """(user + system seconds of the worker and its children, of the bench redis-server)."""
        def used(process: psutil.Process) -> float:
            times = process.cpu_times()
            return float(times.user + times.system)

        root = psutil.Process(worker_pid)
        tree = sum(used(p) for p in [root, *root.children(recursive=True)])
        return tree, used(psutil.Process(self.server.pid))

    def counter(self) -> int:
        return int(self.redis.get("bench:counter") or 0)

    def measure(self, system: str) -> dict[str, float]:
        self.redis.flushall()
        if system == "floor":
            result = self.run_python(str(HERE / "enqueue.py"), "floor", str(self.jobs))
            return {"round_trip_us": result["seconds"] / result["calls"] * 1e6}
        return {**self.enqueue(system), **self.drain(system)}

    def latency(self, samples: int) -> dict[str, float]:
        self.redis.flushall()
        worker = self.start_worker("qctl")
        try:
            return self.run_python(str(HERE / "latency.py"), str(samples))
        finally:
            stop(worker)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def stop(worker: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=15)
    except ProcessLookupError:
        pass


def report(rounds: list[dict[str, dict[str, float]]]) -> dict[str, object]:
    """Medians of the rounds, and the target ratios for whichever systems ran."""
    systems = [s for s in ("qctl", *PEERS) if s in rounds[0]]
    metrics = ("enqueue_per_s", "enqueue_cpu_us", "drain_per_s", "worker_cpu_us_per_job", "redis_cpu_us_per_job")
    table = {s: {m: statistics.median(r[s][m] for r in rounds) for m in metrics} for s in systems}
    round_trip = statistics.median(r["floor"]["round_trip_us"] for r in rounds)
    summary: dict[str, object] = {"medians": table, "round_trip_us": round_trip, "rounds": rounds}
    if "qctl" not in table:
        return summary
    qctl = table["qctl"]
    ratios = {"qctl_us_per_job": 1e6 / qctl["drain_per_s"],
              "qctl_job_in_round_trips": 1e6 / qctl["drain_per_s"] / round_trip}
    if "huey" in table:
        ratios["qctl_drain_vs_huey"] = qctl["drain_per_s"] / table["huey"]["drain_per_s"]
        ratios["qctl_enqueue_vs_huey"] = qctl["enqueue_per_s"] / table["huey"]["enqueue_per_s"]
    at_least_once = [table[p]["drain_per_s"] for p in AT_LEAST_ONCE_PEERS if p in table]
    if at_least_once:
        ratios["qctl_drain_vs_fastest_at_least_once_peer"] = qctl["drain_per_s"] / max(at_least_once)
    others = [table[p]["enqueue_per_s"] for p in PEERS if p in table and p != "huey"]
    if others:
        ratios["qctl_enqueue_vs_best_other_peer"] = qctl["enqueue_per_s"] / max(others)
    summary["ratios"] = ratios
    summary["latency"] = {m: statistics.median(r["latency"][m] for r in rounds) for m in ("p50_ms", "p99_ms")}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--only", default="", help="comma-separated systems (default: all)")
    parser.add_argument("--busy-poll-us", type=int, default=100,
                        help="the bench connection's busy_poll_us (qctl's worker and dispatcher; 0 = off)")
    parser.add_argument("--out", type=Path, help="write the full results as JSON here")
    parser.add_argument("--qctl-args", default="", help="extra `qctl work` options, e.g. '--memory 0'")
    parser.add_argument("--hog", action="store_true",
                        help="keep one core busy for the whole run with a `while True: pass` child (stopped at the end)")
    parser.add_argument("--hog-cpu", type=int, default=None, help="pin the hog to this CPU (default: not pinned)")
    args = parser.parse_args()
    order = ["floor", "qctl", *PEERS]
    if args.only:
        order = [s for s in order if s in args.only.split(",") or s == "floor"]
    hog = start_hog(args.hog_cpu) if args.hog else None
    try:
        summary = run_rounds(args, order)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    summary["load_average"] = os.getloadavg()
    summary["hog"] = {"running": args.hog, "cpu": args.hog_cpu}
    print(json.dumps({k: v for k, v in summary.items() if k != "rounds"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2), encoding="utf-8")


def start_hog(cpu: int | None) -> subprocess.Popen[bytes]:
    """A CPU hog, as another busy process on a shared machine would be."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    if cpu is not None:
        os.sched_setaffinity(hog.pid, {cpu})
    return hog


def run_rounds(args: argparse.Namespace, order: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="qctl-bench-") as tmp:
        bench = Bench(args.jobs, Path(tmp), args.qctl_args.split(), args.busy_poll_us)
        rounds: list[dict[str, dict[str, float]]] = []
        try:
            for number in range(args.rounds):
                rotated = order[number % len(order):] + order[:number % len(order)]
                results = {system: bench.measure(system) for system in rotated}
                if "qctl" in order:
                    results["latency"] = bench.latency(args.latency_samples)
                print(f"round {number + 1}: {json.dumps(results)}", file=sys.stderr, flush=True)
                rounds.append(results)
        finally:
            bench.close()
    return report(rounds)


if __name__ == "__main__":
    main()
