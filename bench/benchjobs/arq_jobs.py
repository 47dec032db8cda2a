from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings

from benchjobs import COUNTER

REDIS = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])


async def incr(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(COUNTER)


class WorkerSettings:
    functions = [incr]
    redis_settings = REDIS
    poll_delay = 0.01
