from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings

from benchjobs import COUNTER

REDIS = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])


async def incr(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(COUNTER)


async def nap(ctx: dict[str, Any], seconds: float) -> None:
    await asyncio.sleep(seconds)
    await ctx["redis"].incr(COUNTER)


class WorkerSettings:
    functions = [incr, nap]
    redis_settings = REDIS
    poll_delay = 0.01
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))  # arq's own default
