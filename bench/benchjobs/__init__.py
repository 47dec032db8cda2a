"""No-op jobs for the benchmark, one module per system: each INCRs one counter on the bench Redis."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

COUNTER = "bench:counter"
LATENCIES = "bench:latencies"


@cache
def client() -> redis.Redis:
    import redis  # here, so a job that needs no Redis (qctl_jobs.Touch on SQLite) does not import it

    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
