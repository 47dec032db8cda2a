"""What job metrics cost a worker: drain jobs/s with `[metrics] enabled` on and off, same run.

For each target (Redis, PostgreSQL) and each round, fill N no-op jobs, then drain them with one
`qctl work --stop-when-empty` process, metrics on and metrics off in turn (the order alternates
from round to round). The figure is the span from the first job to the last, timed inside the
worker (bench_span.py), so interpreter start-up is left out, and the worker process's CPU time per
job (start-up included: the same in both), steadier than wall time on a shared machine; medians
over rounds and the ratios on/off (target: at most 5% slower, a j/s ratio ≥ 0.95 and a CPU ratio ≤ 1.05).
Tables and keys get random names and are dropped afterwards.

    python bench/metrics_overhead.py [--jobs 5000] [--rounds 5] [--only redis,postgresql]
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_span import SPAN_FILE, read_span  # noqa: E402

from qctl import config as config_module  # noqa: E402
from qctl.db.engines import get_engine  # noqa: E402
from qctl.runtime import Runtime, use  # noqa: E402

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def write_config(directory: Path, kind: str, token: str, enabled: bool) -> None:
    if kind == "redis":
        connection = f'driver = "redis"\nurl = "{REDIS_URL}"\nprefix = "qctl-bench-{token}:"'
        cache = f'[cache]\ndriver = "redis"\nurl = "{REDIS_URL}"\ntable = "qctl-bench-{token}:cache"'
    else:
        connection = f'driver = "database"\nurl = "{POSTGRES_URL}"\ntable = "jobs_{token}"'
        cache = f'[cache]\nurl = "{POSTGRES_URL}"\ntable = "cache_{token}"'
    (directory / "qctl.toml").write_text(
        f'default = "main"\napp = ["qctl_bench_jobs"]\n\n[connections.main]\n{connection}\n\n{cache}\n'
        f'[failed]\nurl = "sqlite:///{directory}/stores.sqlite"\n[batching]\nurl = "sqlite:///{directory}/stores.sqlite"\n'
        f'[metrics]\nenabled = {"true" if enabled else "false"}\n'
    )


def drain_rate(directory: Path, jobs: int) -> tuple[float, float]:
    """(jobs/s from the first job to the last, the worker process's CPU µs per job)."""
    from qctl_bench_jobs import Noop

    runtime = Runtime(config_module.load(directory / "qctl.toml"))
    with use(runtime):
        from qctl import Queue

        for start in range(0, jobs, 1000):
            Queue.bulk([Noop() for _ in range(min(1000, jobs - start))])
    span_file = directory / "span"
    span_file.unlink(missing_ok=True)
    env = {**os.environ, SPAN_FILE: str(span_file), "PYTHONPATH": str(BENCH)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "qctl", "work", "--stop-when-empty", "--sleep", "0.1"], cwd=directory,
                   env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, ran = read_span(str(span_file))
    assert ran == jobs, (ran, jobs)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return jobs / seconds, cpu / jobs * 1e6


def drop(kind: str, token: str) -> None:
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        found = list(client.scan_iter(match=f"qctl-bench-{token}:*"))
        if found:
            client.delete(*found)
        client.close()
    elif kind == "postgresql":  # SQLite targets live in a temporary directory
        with get_engine(POSTGRES_URL).begin() as conn:
            for table in (f"jobs_{token}", f"cache_{token}", f"cache_{token}_locks"):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="redis,postgresql")
    args = parser.parse_args()
    print(f"{'target':<12} {'on j/s':>8} {'off j/s':>8} {'on/off':>7} {'on CPU µs/job':>14} {'off CPU µs/job':>15} {'on/off':>7}")
    for kind in args.only.split(","):
        token = secrets.token_hex(4)
        rates: dict[bool, list[float]] = {True: [], False: []}
        cpus: dict[bool, list[float]] = {True: [], False: []}
        try:
            with tempfile.TemporaryDirectory() as tmp:
                directories = {flag: Path(tmp) / ("on" if flag else "off") for flag in (True, False)}
                for flag, directory in directories.items():
                    directory.mkdir()
                    write_config(directory, kind, token, flag)
                for round_number in range(args.rounds):
                    order = (True, False) if round_number % 2 == 0 else (False, True)
                    for flag in order:
                        rate, cpu = drain_rate(directories[flag], args.jobs)
                        rates[flag].append(rate)
                        cpus[flag].append(cpu)
                        print(f"  {kind} round {round_number + 1} metrics {'on' if flag else 'off'}: "
                              f"{rate:.0f} j/s, {cpu:.0f} CPU µs/job", file=sys.stderr, flush=True)
        finally:
            drop(kind, token)
        on, off = statistics.median(rates[True]), statistics.median(rates[False])
        cpu_on, cpu_off = statistics.median(cpus[True]), statistics.median(cpus[False])
        print(f"{kind:<12} {on:>8.0f} {off:>8.0f} {on / off:>7.3f} {cpu_on:>14.0f} {cpu_off:>15.0f} {cpu_on / cpu_off:>7.3f}",
              flush=True)


if __name__ == "__main__":
    main()
