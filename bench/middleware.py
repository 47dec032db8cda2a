"""What job middleware cost a drain: the same no-op jobs with no middleware, with `RateLimited`
under a limit far above the drain rate, and with `WithoutOverlapping` on a key of their own.

For each target (queue and cache store both on PostgreSQL; both on Redis), every round fills
the queue with `--jobs` jobs of one kind (the driver's bulk push) and works them off with
`--workers` `qctl work --stop-when-empty` processes; jobs/s from the first job to the last
(bench_span.py). Kinds and targets are interleaved; figures are medians over the rounds, with
each middleware's rate as a ratio of the plain rate measured in the same rounds.

    python bench/middleware.py [--jobs 10000] [--workers 4] [--rounds 3] [--only pg,redis]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from batches import Target, _current, run_rounds  # noqa: E402

KINDS = ("none", "RateLimited", "WithoutOverlapping")


def one_round(target: Target, jobs: int, workers: int) -> None:
    from qctl_bench_jobs import Noop, NoopRateLimited, NoopWithoutOverlapping

    makers = {"none": lambda n: Noop(), "RateLimited": lambda n: NoopRateLimited(),
              "WithoutOverlapping": lambda n: NoopWithoutOverlapping(n)}
    for kind in KINDS:
        with _current(target.runtime):
            target.runtime.dispatcher.bulk([makers[kind](n) for n in range(jobs)])
        target.note(kind, jobs / target.drain(workers, jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated target names to keep (pg, redis)")
    args = parser.parse_args()
    def summary(target: Target, medians: dict[str, float]) -> str:
        return "  ".join(f"{k} {v:,.0f} ({v / medians['none']:.2f})" for k, v in medians.items())

    run_rounds("middleware", args.only, args.rounds, lambda target: one_round(target, args.jobs, args.workers),
               f"{args.jobs} no-op jobs, {args.workers} workers (jobs/s, ratio to none)", summary)

if __name__ == "__main__":
    main()
