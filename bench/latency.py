"""qctl dispatch → handle() start latency with an idle worker blocked on the queue; prints JSON.

`python latency.py SAMPLES` (cwd holds the bench qctl.toml, a worker is already running).
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from benchjobs import LATENCIES, client
from benchjobs.qctl_jobs import Ping


def measure(samples: int) -> list[float]:
    redis = client()
    redis.delete(LATENCIES)
    found: list[float] = []
    for _ in range(samples + 10):
        time.sleep(0.02)  # let the worker settle back into its blocking pop
        Ping(time.time()).dispatch()
        answer = redis.blpop([LATENCIES], timeout=30)
        if answer is None:
            raise SystemExit("no answer from the worker within 30 s")
        found.append(float(answer[1]))
    return found[10:]  # the first few warm up imports and connections


if __name__ == "__main__":
    values = sorted(measure(int(sys.argv[1])))
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    print(json.dumps({"samples": len(values), "p50_ms": statistics.median(values) * 1000, "p99_ms": p99 * 1000}))
