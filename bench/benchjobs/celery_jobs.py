from __future__ import annotations

import os
import time

from celery import Celery

from benchjobs import COUNTER, client

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(ignore_result=True)
def incr() -> None:
    client().incr(COUNTER)


@app.task(ignore_result=True)
def nap(seconds: float) -> None:
    time.sleep(seconds)
    client().incr(COUNTER)
