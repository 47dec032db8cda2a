from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchjobs import COUNTER, client

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor
def incr() -> None:
    client().incr(COUNTER)
