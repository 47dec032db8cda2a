"""What the test helpers cost: µs per job of `dispatch()` under `Queue.fake()`, and through `work_off()`.

Interleaved per round, `--jobs` no-op jobs each (medians over the rounds):
- fake: `Noop().dispatch()` under `Queue.fake()` (payload built, checked and recorded, nothing stored);
- fake+assert: the same, then one `assert_pushed(Noop, n)` over every record;
- memory dispatch: `dispatch()` onto the memory driver (`qctl.testing.memory_runtime`);
- work_off: `qctl.testing.work_off()` of those jobs through the worker's loop and runner;
- fake work_off: `work_off()` of the jobs a `Queue.fake()` recorded (held for it in memory);
- sqlite dispatch, for scale: `dispatch()` onto a SQLite file in a temp directory.

    python bench/testing.py [--jobs 1000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def timed(action: Callable[[], object], jobs: int) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) / jobs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from qctl_bench_jobs import Noop

    from qctl import Queue, config
    from qctl.runtime import Runtime, use
    from qctl.testing import memory_runtime, work_off

    n = args.jobs

    def dispatch_all() -> None:
        for _ in range(n):
            Noop().dispatch()

    figures: dict[str, list[float]] = {k: [] for k in ("fake", "fake+assert", "memory dispatch", "work_off",
                                                       "fake work_off", "sqlite dispatch")}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = config.parse({"app": ["qctl_bench_jobs"], "connections": {
            "database": {"driver": "database", "url": f"sqlite:///{tmp}/bench.sqlite"}}})
        for _ in range(args.rounds):
            with memory_runtime(app=["qctl_bench_jobs"]):
                with Queue.fake():
                    figures["fake"].append(timed(dispatch_all, n))
                with Queue.fake() as fake:
                    figures["fake+assert"].append(timed(lambda: (dispatch_all(), fake.assert_pushed(Noop, n)), n))
                figures["memory dispatch"].append(timed(dispatch_all, n))
                started = time.perf_counter()
                ran = work_off(max_jobs=n)
                figures["work_off"].append((time.perf_counter() - started) / n * 1e6)
                assert ran == n, ran
                with Queue.fake():
                    dispatch_all()
                    started = time.perf_counter()
                    ran = work_off(max_jobs=n)
                    figures["fake work_off"].append((time.perf_counter() - started) / n * 1e6)
                    assert ran == n, ran
            with use(Runtime(sqlite)) as runtime:
                figures["sqlite dispatch"].append(timed(dispatch_all, n))
                runtime.connections.get().clear("default")

    print(f"{n} jobs, {args.rounds} rounds, median µs per job (min–max)")
    for name, values in figures.items():
        print(f"  {name:<16} {statistics.median(values):8.1f}   ({min(values):.1f}–{max(values):.1f})")


if __name__ == "__main__":
    main()
