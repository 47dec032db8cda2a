from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchjobs import COUNTER, client

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor
def incr() -> None:
    client().incr(COUNTER)


@dramatiq.actor
def nap(seconds: float) -> None:
    time.sleep(seconds)
    client().incr(COUNTER)
