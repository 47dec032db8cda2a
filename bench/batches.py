"""What batches and chains cost: dispatching a batch, draining it next to plain jobs, chain links per second.

For each target (the queue and the batch store on PostgreSQL; both on Redis):

- dispatch: seconds for `Bus.batch([10,000 no-op jobs]).dispatch()` in this process
  (payloads built and checked, the batch stored, members registered, jobs queued);
- drain: 4 `qctl work --stop-when-empty` processes work off those 10,000 batched jobs, and, in
  the same round, 10,000 plain jobs; jobs/s from the first job to the last (bench_span.py) and
  the batched/plain ratio (the batch bookkeeping's cost);
- chain: one worker runs a chain of 1,000 links; links/s from the first link to the last.

Rounds are interleaved; every figure is the median of the rounds. Tables and keys get unique
names and are dropped afterwards.

    python bench/batches.py [--jobs 10000] [--links 1000] [--workers 4] [--rounds 3] [--only pg,redis]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_span import SPAN_FILE, read_span  # noqa: E402

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("QCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WORK = ["work", "--stop-when-empty", "--sleep", "0.1"]


@dataclass
class Target:
    name: str
    directory: Path
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    results: dict[str, list[float]] = field(default_factory=dict)

    def toml(self) -> str:
        raise NotImplementedError

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "qctl.toml").write_text(self.toml(), encoding="utf-8")
        from qctl import config
        from qctl.runtime import Runtime

        self.runtime = Runtime(config.load(self.directory / "qctl.toml"))

    def note(self, what: str, value: float) -> None:
        self.results.setdefault(what, []).append(value)

    def drain(self, workers: int, expected: int) -> float:
        """Seconds from the first job to the last, across `workers` processes."""
        span_file = self.directory / f"span-{time.monotonic_ns()}.txt"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p))
        env[SPAN_FILE] = str(span_file)
        procs = [subprocess.Popen([sys.executable, "-m", "qctl", *WORK], cwd=self.directory, env=env,
                                  stdout=subprocess.DEVNULL, stderr=(self.directory / f"w{n}.log").open("w"))
                 for n in range(workers)]
        statuses = [p.wait() for p in procs]
        span, ran = read_span(str(span_file))
        if any(statuses) or ran != expected:
            raise SystemExit(f"{self.name}: workers exited {statuses}, ran {ran} of {expected}:\n"
                             + (self.directory / "w0.log").read_text()[-2000:])
        return span

    def round(self, jobs: int, links: int, workers: int) -> None:
        from qctl_bench_jobs import Noop

        from qctl import Bus

        with _current(self.runtime):
            started = time.perf_counter()
            batch = Bus.batch([Noop() for _ in range(jobs)]).name("bench").dispatch()
            self.note("dispatch s", time.perf_counter() - started)
        self.note("batched j/s", jobs / self.drain(workers, jobs))
        if not batch.fresh().finished():
            raise SystemExit(f"{self.name}: the batch did not finish: {batch.fresh()!r}")
        with _current(self.runtime):
            self.runtime.dispatcher.bulk([Noop() for _ in range(jobs)])
        self.note("plain j/s", jobs / self.drain(workers, jobs))
        with _current(self.runtime):
            Bus.chain([Noop() for _ in range(links)]).dispatch()
        self.note("chain links/s", links / self.drain(1, links))

    def teardown(self) -> None:
        self.runtime.close()


class PostgresTarget(Target):
    def toml(self) -> str:
        t = self.token
        return (f'default = "bench"\napp = ["qctl_bench_jobs"]\n\n[connections.bench]\ndriver = "database"\n'
                f'url = "{POSTGRES_URL}"\ntable = "jobs_{t}"\n'
                + "".join(f'\n[{s}]\nurl = "{POSTGRES_URL}"\ntable = "{s}_{t}"\n' for s in ("failed", "batching", "cache")))

    def teardown(self) -> None:
        from sqlalchemy import create_engine, text

        super().teardown()
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            t = self.token
            for name in (f"jobs_{t}", f"failed_{t}", f"batching_{t}", f"batching_{t}_jobs", f"cache_{t}", f"cache_{t}_locks"):
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


class RedisTarget(Target):
    def toml(self) -> str:
        t = self.token
        return (f'default = "bench"\napp = ["qctl_bench_jobs"]\n\n[connections.bench]\ndriver = "redis"\n'
                f'url = "{REDIS_URL}"\nprefix = "qctl-bench-{t}:"\nblock_for = 5\n'
                f'\n[batching]\ndriver = "redis"\nurl = "{REDIS_URL}"\ntable = "qctl-bench-{t}:job_batches"\n'
                f'\n[cache]\ndriver = "redis"\nurl = "{REDIS_URL}"\ntable = "qctl-bench-{t}:cache"\n'
                f'\n[failed]\nurl = "sqlite:///{self.directory}/failed.sqlite"\n')

    def teardown(self) -> None:
        import redis

        super().teardown()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"qctl-bench-{self.token}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


class _current:
    """The runtime `Bus` dispatches through, for the block (without closing it after)."""

    def __init__(self, runtime: object) -> None:
        self.runtime = runtime

    def __enter__(self) -> None:
        from qctl import runtime as module

        self.previous = module._current
        module.set_current(self.runtime)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        from qctl import runtime as module

        module._current = self.previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--links", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated target names to keep (pg, redis)")
    args = parser.parse_args()

    def summary(target: Target, medians: dict[str, float]) -> str:
        return "  ".join(f"{k} {v:,.2f}" for k, v in medians.items()) + \
            f"  batched/plain {medians['batched j/s'] / medians['plain j/s']:.2f}"

    run_rounds("batches", args.only, args.rounds,
               lambda target: target.round(args.jobs, args.links, args.workers),
               f"{args.jobs} no-op jobs, {args.workers} workers, chain of {args.links}", summary)


def run_rounds(name: str, only: str, rounds: int, one_round: Callable[[Target], None], title: str,
               summary: Callable[[Target, dict[str, float]], str]) -> None:
    """Set up the PostgreSQL and Redis targets (those named in `only`), run `one_round` on each
    per round, interleaved, print each round's figures and then the medians, and clean up."""
    root = Path(tempfile.mkdtemp(prefix=f"qctl-bench-{name}-"))
    chosen: list[Target] = [PostgresTarget("pg", root / "pg"), RedisTarget("redis", root / "redis")]
    if only:
        chosen = [t for t in chosen if t.name in only.split(",")]
    try:
        for target in chosen:
            target.setup()
        for number in range(rounds):
            for target in chosen:
                one_round(target)
                print(f"round {number + 1} {target.name}: "
                      + ", ".join(f"{k} {v[-1]:,.2f}" for k, v in target.results.items()), flush=True)
        print(f"\n{title}; median of {rounds} rounds")
        for target in chosen:
            print(f"{target.name:6} " + summary(target, {k: statistics.median(v) for k, v in target.results.items()}))
    finally:
        for target in chosen:
            try:
                target.teardown()
            except Exception as exc:  # cleanup must not hide the figures or the first error
                print(f"cleanup of {target.name} failed: {exc}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
