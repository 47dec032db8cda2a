"""Figures for failure handling, measured with real worker processes.

    python bench/failures.py stuck-in-c [--runs 5] [--kind sqlite]
        How long after its timeout a worker whose job is stuck in C code (holding the GIL) is gone.
    python bench/failures.py kill-every-second [--seconds 120] [--workers 3] [--kind sqlite]
        Jobs lost and duplicated while one worker of the pool is SIGKILLed at random every second.

Uses the test harness (tests/support) and the test jobs (tests/fixtures); run from the repository
root with the test extras installed. Server kinds need the servers of tests/support/services.py.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "tests" / "fixtures", ROOT):
    sys.path.insert(0, str(path))

import qctl_testjobs as jobs  # noqa: E402

from qctl.runtime import Runtime  # noqa: E402
from qctl.worker.timeout import GRACE_SECONDS  # noqa: E402
from tests.support.configs import drop_tables, make_setup  # noqa: E402
from tests.support.ledger import analyse  # noqa: E402
from tests.support.processes import read_ledger, spawn_qctl, wait_for  # noqa: E402
from tests.support.workers import MiniSupervisor, dispatch, failed_records, queue_size  # noqa: E402

JOB_TIMEOUT = jobs.StuckInCTimesOut.timeout


def stuck_in_c_once(kind: str, directory: Path) -> float:
    setup = make_setup(kind, directory, retry_after=30)
    runtime = Runtime(setup.config())
    ledger = directory / "ledger"
    try:
        uuid = dispatch(runtime, jobs.StuckInCTimesOut(10**10, str(ledger)))
        worker = spawn_qctl(["work", "--sleep", "0.1"], directory)
        wait_for(lambda: any(r[0] == "start" and r[1] == uuid for r in read_ledger(ledger)), 60, interval=0.01)
        started = float(next(r for r in read_ledger(ledger) if r[0] == "start")[4])
        while worker.alive():
            time.sleep(0.005)
        gone = time.monotonic()
        if worker.process.returncode != 1:
            raise SystemExit(f"unexpected exit status {worker.process.returncode}")
        return gone - started - JOB_TIMEOUT
    finally:
        runtime.close()
        drop_tables(setup)


def stuck_in_c(args: argparse.Namespace) -> dict[str, object]:
    latencies = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="qctl-bench-") as tmp:
            latencies.append(stuck_in_c_once(args.kind, Path(tmp)))
        print(f"run {n + 1}: worker gone {latencies[-1]:.3f}s after the job's {JOB_TIMEOUT}s timeout", flush=True)
    return {
        "figure": "stuck-in-C worker gone after its timeout",
        "kind": args.kind,
        "timeout_s": JOB_TIMEOUT,
        "grace_s": GRACE_SECONDS,
        "runs_s": [round(x, 3) for x in latencies],
        "median_s": round(statistics.median(latencies), 3),
    }


def kill_every_second(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="qctl-bench-") as tmp:
        directory = Path(tmp)
        setup = make_setup(args.kind, directory, retry_after=2)
        runtime = Runtime(setup.config())
        ledger = directory / "ledger"

        def push(n: int) -> list[str]:
            return [dispatch(runtime, jobs.Sleep(0.02, str(ledger)) if i % 2 else jobs.Ok(i, str(ledger))) for i in range(n)]

        try:
            uuids = push(200)
            with MiniSupervisor(["work", "--sleep", "0.2", "--tries", "0"], directory, count=args.workers) as supervisor:
                until = time.monotonic() + args.seconds
                while time.monotonic() < until:
                    time.sleep(1.0)
                    supervisor.kill_random(rng)
                    if queue_size(runtime) < 300:  # keep a backlog, so kills land mid-job
                        uuids += push(args.batch)
                drain_started = time.monotonic()
                wait_for(lambda: queue_size(runtime) == 0, 300, interval=0.5, message="the queue to drain")
                drained_in = time.monotonic() - drain_started
                supervisor.stop()
            failed = failed_records(runtime)
            report = analyse(ledger, uuids, supervisor.killed, failed)
        finally:
            runtime.close()
            drop_tables(setup)
    return {
        "figure": "random SIGKILL every second",
        "kind": args.kind,
        "seconds": args.seconds,
        "workers": args.workers,
        "kills": len(supervisor.killed),
        "dispatched": report.dispatched,
        "completed": report.completed,
        "failed": report.failed,
        "lost": len(report.lost),
        "duplicates": report.duplicates,
        "unexplained_duplicates": len(report.unexplained),
        "drain_after_kills_s": round(drained_in, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="figure", required=True)
    one = sub.add_parser("stuck-in-c")
    one.add_argument("--runs", type=int, default=5)
    one.add_argument("--kind", default="sqlite", choices=["sqlite", "postgresql", "mariadb", "redis"])
    two = sub.add_parser("kill-every-second")
    two.add_argument("--seconds", type=float, default=120)
    two.add_argument("--workers", type=int, default=3)
    two.add_argument("--batch", type=int, default=60)
    two.add_argument("--seed", type=int, default=20261126)
    two.add_argument("--kind", default="sqlite", choices=["sqlite", "postgresql", "mariadb", "redis"])
    args = parser.parse_args()
    result = stuck_in_c(args) if args.figure == "stuck-in-c" else kill_every_second(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
