"""qctl with `busy_poll_us` off and on, for pools of 1, 4 and 8 worker processes on one private Redis.

Each round drains N queued `Incr` jobs once per setting and pool size, the two settings in
alternating order; the report gives the medians of the rounds (jobs/s, first to last INCR).

    python bench/busy_poll.py --jobs 20000 --rounds 3 --workers 1,4,8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from run import QCTL_TOML, Bench, stop, wait_until

SETTINGS = (0, 100)


def drain(bench: Bench, busy_poll_us: int, workers: int) -> float:
    (bench.workdir / "qctl.toml").write_text(QCTL_TOML.format(url=bench.url, busy_poll_us=busy_poll_us),
                                             encoding="utf-8")
    bench.redis.flushall()
    bench.enqueue("qctl")
    pool: list[subprocess.Popen[bytes]] = [bench.start_worker("qctl") for _ in range(workers)]
    try:
        wait_until(lambda: bench.counter() >= 1, 120, "the first job", interval=0.001)
        started = time.perf_counter()
        wait_until(lambda: bench.counter() >= bench.jobs, 600, "the drain", interval=0.005)
        return (bench.jobs - 1) / (time.perf_counter() - started)
    finally:
        for worker in pool:
            stop(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,4,8", help="comma-separated pool sizes")
    args = parser.parse_args()
    pools = [int(n) for n in args.workers.split(",")]
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args.jobs, Path(tmp), [])
        try:
            for number in range(args.rounds):
                order = SETTINGS if number % 2 == 0 else SETTINGS[::-1]
                for workers in pools:
                    for setting in order:
                        rate = drain(bench, setting, workers)
                        rates.setdefault(f"{workers} workers, busy_poll_us={setting}", []).append(rate)
                print(f"round {number + 1}: " + json.dumps({k: round(v[-1]) for k, v in rates.items()}), flush=True)
        finally:
            bench.close()
    print(json.dumps({k: {"median_jobs_per_s": round(statistics.median(v)), "rounds": [round(x) for x in v]}
                      for k, v in rates.items()}, indent=2))


if __name__ == "__main__":
    main()
