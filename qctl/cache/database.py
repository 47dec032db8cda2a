"""The database cache store: Laravel's `cache` table (key, value, expiration in unix seconds)."""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from qctl.db.engines import get_engine, redact
from qctl.db.schema import cache_table
from qctl.db.transactions import table_transaction
from qctl.errors import StoreUnavailableError

FOREVER = 9_999_999_999


def _expiry(ttl: float | None) -> int:
    return FOREVER if ttl is None else math.ceil(time.time() + ttl)  # whole seconds, never early


def _is_write_race(exc: StoreUnavailableError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, IntegrityError) or "deadlock" in str(cause).lower()


class DatabaseCacheStore:
    def __init__(self, url: str, table: str = "cache") -> None:
        self.engine = get_engine(url)
        self.table = cache_table(table)
        self._url = url

    def get(self, key: str) -> str | None:
        c = self.table.c
        with self._connection("read") as conn:
            return conn.execute(select(c.value).where(c.key == key, c.expiration > time.time())).scalar()

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._connection("write") as conn:
            conn.execute(delete(self.table).where(self.table.c.key == key))
            conn.execute(insert(self.table).values(key=key, value=value, expiration=_expiry(ttl)))

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        c = self.table.c
        try:
            with self._connection("write") as conn:
                taken = conn.execute(
                    update(self.table).where(c.key == key, c.expiration <= time.time()).values(value=value, expiration=_expiry(ttl))
                ).rowcount
                if taken:
                    return True
                conn.execute(insert(self.table).values(key=key, value=value, expiration=_expiry(ttl)))
                return True
        except StoreUnavailableError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False  # somebody holds a live value
            raise

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        for _ in range(5):  # two processes creating the same counter: the loser retries as an update
            try:
                return self._increment_once(key, by, ttl)
            except StoreUnavailableError as exc:
                if not _is_write_race(exc):
                    raise
        raise StoreUnavailableError(f"cache {redact(self._url)}: could not increment {key!r}")

    def _increment_once(self, key: str, by: int, ttl: float | None) -> int:
        c = self.table.c
        with self._connection("increment") as conn:
            query = select(c.value, c.expiration).where(c.key == key)
            if self.engine.dialect.name != "sqlite":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                conn.execute(insert(self.table).values(key=key, value=str(by), expiration=_expiry(ttl)))
                return by
            current = int(row.value) if row.expiration > time.time() and row.value.lstrip("-").isdigit() else 0
            expiration = row.expiration if current else _expiry(ttl)
            conn.execute(update(self.table).where(c.key == key).values(value=str(current + by), expiration=expiration))
            return current + by

    def forget(self, key: str) -> bool:
        with self._connection("delete") as conn:
            return conn.execute(delete(self.table).where(self.table.c.key == key)).rowcount > 0

    def items(self, prefix: str) -> dict[str, str]:
        c = self.table.c
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(c.key, c.value).where(c.key.like(escaped + "%", escape="\\"), c.expiration > time.time())
        with self._connection("read") as conn:
            return {row.key: row.value for row in conn.execute(query)}

    def close(self) -> None:
        return None

    def _connection(self, action: str) -> AbstractContextManager[Connection]:
        return table_transaction(self.engine, self.table, self._url, "cache", action, StoreUnavailableError)
