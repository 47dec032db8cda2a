from __future__ import annotations

import os

from huey import RedisHuey

from benchjobs import COUNTER, client

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def incr() -> None:
    client().incr(COUNTER)
