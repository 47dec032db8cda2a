"""Time N single-call enqueues of one system (or N plain INCR round trips for `floor`); prints JSON.

Run by run.py in a fresh process per measurement: `python enqueue.py SYSTEM N`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

Timing = tuple[float, float]
"""(wall seconds, CPU seconds of this process) of the timed loop alone."""


def floor(n: int) -> Timing:
    from benchjobs import client

    incr, redis = client().incr, client()
    redis.ping()
    return timed(n, lambda: incr("bench:floor"), warm=lambda: None)


def timed(n: int, push: Callable[[], object], warm: Callable[[], object] | None = None) -> Timing:
    (warm or push)()  # connect and import outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        push()
    return time.perf_counter() - started, time.process_time() - cpu


def qctl_enqueue(n: int) -> Timing:
    from benchjobs.qctl_jobs import Incr

    return timed(n - 1, lambda: Incr().dispatch())


def huey_enqueue(n: int) -> Timing:
    from benchjobs.huey_jobs import incr

    return timed(n - 1, incr)


def rq_enqueue(n: int) -> Timing:
    from benchjobs import client
    from benchjobs.rq_jobs import incr
    from rq import Queue

    queue = Queue(connection=client())
    return timed(n - 1, lambda: queue.enqueue(incr))


def dramatiq_enqueue(n: int) -> Timing:
    from benchjobs.dramatiq_jobs import incr

    return timed(n - 1, incr.send)


def celery_enqueue(n: int) -> Timing:
    from benchjobs.celery_jobs import incr

    return timed(n - 1, incr.delay)


def arq_enqueue(n: int) -> Timing:
    from arq import create_pool
    from benchjobs.arq_jobs import REDIS

    async def run() -> Timing:
        pool = await create_pool(REDIS)
        await pool.enqueue_job("incr")
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n - 1):
            await pool.enqueue_job("incr")
        elapsed = time.perf_counter() - started, time.process_time() - cpu
        await pool.aclose()
        return elapsed

    return asyncio.run(run())


SYSTEMS: dict[str, Callable[[int], Timing]] = {
    "floor": floor,
    "qctl": qctl_enqueue,
    "huey": huey_enqueue,
    "rq": rq_enqueue,
    "dramatiq": dramatiq_enqueue,
    "celery": celery_enqueue,
    "arq": arq_enqueue,
}

if __name__ == "__main__":
    system, count = sys.argv[1], int(sys.argv[2])
    seconds, cpu = SYSTEMS[system](count)
    calls = count if system == "floor" else count - 1
    print(json.dumps({"system": system, "calls": calls, "seconds": seconds, "cpu_seconds": cpu}))
