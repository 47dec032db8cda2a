"""Failed-job stores for the conformance suite, and a way to make records look older (every kind)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from qctl.failed.base import FailedJobStore
from qctl.failed.database import DatabaseFailedJobStore
from qctl.failed.memory import MemoryFailedJobStore
from qctl.failed.redis import RedisFailedJobStore
from tests.support.configs import TestSetup

KINDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")


@contextmanager
def failed_store(setup: TestSetup) -> Iterator[FailedJobStore]:
    """The store `setup`'s config names (memory: a fresh one), closed afterwards."""
    if setup.kind == "memory":
        yield MemoryFailedJobStore()
        return
    config = setup.config().failed
    store: FailedJobStore
    if config.driver == "redis":
        store = RedisFailedJobStore(config.url, config.table)
    else:
        store = DatabaseFailedJobStore(config.url, config.table)
    try:
        yield store
    finally:
        if isinstance(store, RedisFailedJobStore):
            store.close()


def make_older(store: FailedJobStore, uuids: Sequence[str], hours: float) -> None:
    """Move the records' failed_at `hours` into the past, as if they had failed then."""
    if isinstance(store, DatabaseFailedJobStore):
        from sqlalchemy import select, update

        table = store.table
        with store.engine.begin() as conn:
            for uuid in uuids:
                stamp = conn.execute(select(table.c.failed_at).where(table.c.uuid == uuid)).scalar_one()
                conn.execute(update(table).where(table.c.uuid == uuid).values(failed_at=stamp - dt.timedelta(hours=hours)))
    elif isinstance(store, RedisFailedJobStore):
        client = store._redis()  # the record hash and the by-time index together, as the log script writes them
        for uuid in uuids:
            key = store._record(uuid)
            moved = float(client.hget(key, "failed_at")) - hours * 3600
            client.hset(key, "failed_at", f"{moved:.6f}")
            client.zadd(store.times, {uuid: moved})
    elif isinstance(store, MemoryFailedJobStore):
        from dataclasses import replace

        with store._mutex:
            for uuid in uuids:
                record = store._records[uuid]
                store._records[uuid] = replace(record, failed_at=record.failed_at - dt.timedelta(hours=hours))
    else:
        raise TypeError(f"no way to age records of {type(store).__name__}")
