"""No-op jobs for the benchmark, one module per system: each INCRs one counter on the bench Redis."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

COUNTER = "bench:counter"
LATENCIES = "bench:latencies"


_async_clients: dict[int, Any] = {}


def async_client() -> Any:
    """A `redis.asyncio` client of the running event loop (concurrency.py's async jobs)."""
    import asyncio

    import redis.asyncio

    loop = id(asyncio.get_running_loop())
    found = _async_clients.get(loop)
    if found is None:
        found = _async_clients[loop] = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return found


@cache
def client() -> redis.Redis:
    import redis  # here, so a job that needs no Redis (qctl_jobs.Touch on SQLite) does not import it

    return redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
