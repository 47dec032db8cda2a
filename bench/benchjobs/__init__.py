"""No-op jobs for the benchmark, one module per system: each INCRs one counter on the bench Redis."""

from __future__ import annotations

import os
from functools import cache

import redis

COUNTER = "bench:counter"
LATENCIES = "bench:latencies"


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
