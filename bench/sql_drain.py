"""Jobs per second that real `qctl work` processes drain from a SQL queue, next to Procrastinate.

For each target: fill N no-op jobs (one bulk insert), start the worker process(es),
and time the drain three ways, all in the same session:

- raw: from spawning the process(es) to the last one exiting (includes start-up);
- net: raw minus the median raw time of an *empty-queue* run of the same command
  (start-up, one empty poll, shutdown), measured in the same rounds;
- span: from the first job to the last job, timed inside the worker (bench_span.py).

Rounds are interleaved (every target once per round) so load from other processes
on a shared machine spreads over all targets; each figure is the median of the rounds.
Tables and schemas get unique names and are dropped afterwards.

    python bench/sql_drain.py [--jobs 10000] [--rounds 3] [--peer-python PATH] [--only sqlite,pg1,...]
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
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_span import SPAN_FILE, read_span  # noqa: E402

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("QCTL_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
WORK = ["work", "--stop-when-empty", "--sleep", "0.1"]


@dataclass
class Sample:
    raw: float
    span: float
    jobs: int
    cpu: float
    """CPU seconds (user + system) of the worker processes: steadier than wall time on a busy machine."""


@dataclass
class Run:
    seconds: float
    cpu: float


@dataclass
class Target:
    """One thing to drain: qctl on a database with some worker processes, or Procrastinate."""

    name: str
    directory: Path
    samples: list[Sample] = field(default_factory=list)
    empty_runs: list[Run] = field(default_factory=list)

    def setup(self) -> None: ...
    def fill(self, count: int) -> None: ...
    def commands(self) -> list[list[str]]: ...
    def remaining(self) -> int: ...
    def teardown(self) -> None: ...

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), env.get("PYTHONPATH", "")) if p)
        return env

    def run_workers(self, span_file: Path | None) -> Run:
        """Seconds from spawning every worker to the last one exiting, and their CPU; fails on a bad exit."""
        env = self.env()
        env.pop(SPAN_FILE, None)
        if span_file is not None:
            env[SPAN_FILE] = str(span_file)
        logs = [self.directory / f"worker-{i}.log" for i in range(len(self.commands()))]
        started = time.perf_counter()
        processes = [
            subprocess.Popen(cmd, cwd=self.directory, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
            for cmd, log in zip(self.commands(), logs, strict=True)
        ]
        statuses, cpu = [], 0.0
        for process in processes:
            _, status, usage = os.wait4(process.pid, 0)
            statuses.append(os.waitstatus_to_exitcode(status))
            cpu += usage.ru_utime + usage.ru_stime
            process.returncode = statuses[-1]
        elapsed = time.perf_counter() - started
        if any(statuses):
            raise SystemExit(f"{self.name}: worker exited {statuses}:\n{logs[0].read_text()[-2000:]}")
        return Run(elapsed, cpu)

    def measure(self, count: int, round_number: int) -> Sample:
        self.fill(count)
        span_file = self.directory / f"span-{round_number}.txt"
        run = self.run_workers(span_file)
        span, jobs = read_span(str(span_file))
        if jobs != count or self.remaining() != 0:
            raise SystemExit(f"{self.name}: ran {jobs} of {count} jobs, {self.remaining()} left in the queue")
        self.empty_runs.append(self.run_workers(None))
        sample = Sample(run.seconds, span, jobs, run.cpu)
        self.samples.append(sample)
        return sample


class QctlTarget(Target):
    def __init__(self, name: str, directory: Path, url: str, processes: int = 1) -> None:
        super().__init__(name, directory)
        self.url = url
        self.processes = processes
        self.table = f"jobs_bench_{secrets.token_hex(4)}"

    def setup(self) -> None:
        from qctl.config import ConnectionConfig
        from qctl.drivers.database import DatabaseDriver

        self.directory.mkdir(parents=True, exist_ok=True)
        stores = "".join(
            f'\n[{store}]\nurl = "{self.url}"\ntable = "{store}_{self.table}"\n' for store in ("failed", "batching", "cache")
        )
        (self.directory / "qctl.toml").write_text(
            f'default = "bench"\napp = ["qctl_bench_jobs"]\n\n[connections.bench]\ndriver = "database"\n'
            f'url = "{self.url}"\ntable = "{self.table}"\n{stores}',
            encoding="utf-8",
        )
        self.driver = DatabaseDriver(ConnectionConfig("bench", "database", self.url, table=self.table))

    def fill(self, count: int) -> None:
        from qctl_bench_jobs import Noop

        from qctl.bus.payloads import build_envelope

        payloads = [(build_envelope(Noop(), None).to_json(None), "default", 0.0) for _ in range(count)]
        self.driver.bulk(payloads)
        analyze(self.driver.engine, self.table)

    def commands(self) -> list[list[str]]:
        return [[sys.executable, "-m", "qctl", *WORK] for _ in range(self.processes)]

    def remaining(self) -> int:
        return self.driver.size("default")

    def teardown(self) -> None:
        from sqlalchemy import text

        if self.driver.engine.dialect.name != "sqlite":
            with self.driver.engine.begin() as conn:
                for store in ("failed", "batching", "cache"):
                    conn.execute(text(f"DROP TABLE IF EXISTS {store}_{self.table}"))
                conn.execute(text(f"DROP TABLE IF EXISTS cache_{self.table}_locks"))
                conn.execute(text(f"DROP TABLE IF EXISTS {self.table}"))
        self.driver.close()


def analyze(engine: object, table: str) -> None:
    """Planner statistics as a long-running database has them (Procrastinate's table gets the same)."""
    from sqlalchemy import text

    with engine.begin() as conn:  # type: ignore[attr-defined]
        keyword = "ANALYZE TABLE" if conn.dialect.name in ("mysql", "mariadb") else "ANALYZE"
        conn.execute(text(f"{keyword} {table}"))


class ProcrastinateTarget(Target):
    """Procrastinate in the peers' environment, in its own PostgreSQL schema."""

    def __init__(self, name: str, directory: Path, python: str, concurrency: int) -> None:
        super().__init__(name, directory)
        self.python = python
        self.concurrency = concurrency
        self.schema = f"qctl_bench_{secrets.token_hex(4)}"

    def env(self) -> dict[str, str]:
        env = super().env()
        env["QCTL_BENCH_PG_SCHEMA"] = self.schema
        env["QCTL_BENCH_PG_DSN"] = POSTGRES_URL.replace("+psycopg", "")
        return env

    def app(self, *args: str) -> str:
        done = subprocess.run(
            [self.python, str(BENCH / "procrastinate_bench_app.py"), *args],
            env=self.env(), capture_output=True, text=True, check=True,
        )
        return done.stdout.strip()

    def setup(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.app("setup")

    def fill(self, count: int) -> None:
        self.app("fill", str(count))

    def commands(self) -> list[list[str]]:
        return [[
            self.python, "-m", "procrastinate", "--log-level", "warning", "--app", "procrastinate_bench_app.app",
            "worker", "--one-shot", "--concurrency", str(self.concurrency),
        ]]

    def remaining(self) -> int:
        return int(self.app("remaining"))

    def teardown(self) -> None:
        self.app("drop")


def targets(root: Path, peer_python: str | None) -> list[Target]:
    found: list[Target] = [
        QctlTarget("qctl sqlite 1p", root / "sqlite", f"sqlite:///{root / 'sqlite' / 'bench.sqlite'}"),
        QctlTarget("qctl postgresql 1p", root / "pg1", POSTGRES_URL),
        QctlTarget("qctl mariadb 1p", root / "mariadb", MARIADB_URL),
        QctlTarget("qctl postgresql 4p", root / "pg4", POSTGRES_URL, processes=4),
    ]
    if peer_python:
        found += [
            ProcrastinateTarget("procrastinate c=1", root / "proc1", peer_python, 1),
            ProcrastinateTarget("procrastinate c=10", root / "proc10", peer_python, 10),
        ]
    return found


def report(all_targets: list[Target], count: int) -> None:
    rounds = len(all_targets[0].samples)
    print(f"\n{count} no-op jobs, median of {rounds} interleaved rounds")
    print(f"{'target':22} {'raw s':>7} {'empty s':>8} {'raw j/s':>8} {'net j/s':>8} {'span j/s':>9} {'cpu ms/job':>11}")
    rates: dict[str, float] = {}
    for target in all_targets:
        raw = statistics.median(s.raw for s in target.samples)
        empty = statistics.median(r.seconds for r in target.empty_runs)
        span = statistics.median(s.span for s in target.samples)
        cpu = statistics.median(s.cpu for s in target.samples) - statistics.median(r.cpu for r in target.empty_runs)
        rates[target.name] = count / span
        print(f"{target.name:22} {raw:7.2f} {empty:8.2f} {count / raw:8.0f} {count / (raw - empty):8.0f} "
              f"{count / span:9.0f} {cpu * 1000 / count:11.3f}")
    qctl_pg = rates.get("qctl postgresql 1p")
    for peer in ("procrastinate c=1", "procrastinate c=10"):
        if qctl_pg and peer in rates:
            print(f"ratio qctl postgresql 1p / {peer} (span j/s): {qctl_pg / rates[peer]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-python", default=os.environ.get("QCTL_BENCH_PEER_PYTHON"),
                        help="python of the environment with Procrastinate installed (skipped when unset)")
    parser.add_argument("--only", default="", help="comma-separated target names to keep (substring match)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qctl-bench-"))
    # the workers run in their own directories: a relative interpreter path must not move with them
    peer_python = str(Path(args.peer_python).absolute()) if args.peer_python else None
    chosen = targets(root, peer_python)
    if args.only:
        chosen = [t for t in chosen if any(word in t.name for word in args.only.split(","))]
    try:
        for target in chosen:
            target.setup()
        for round_number in range(args.rounds):
            for target in chosen:
                sample = target.measure(args.jobs, round_number)
                print(f"round {round_number + 1} {target.name:22} raw {sample.raw:6.2f}s span {sample.span:6.2f}s "
                      f"empty {target.empty_runs[-1].seconds:5.2f}s cpu {sample.cpu:6.2f}s", flush=True)
        report(chosen, args.jobs)
    finally:
        for target in chosen:
            try:
                target.teardown()
            except Exception as exc:  # cleanup must not hide the figures or the first error
                print(f"cleanup of {target.name} failed: {exc}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
