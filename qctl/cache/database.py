"""The database cache store: Laravel's `cache` table (key, value, expiration in unix seconds) and
its `<table>_locks` table (key, owner, expiration).

Every expiry is read from the store's clock, so tests move time instead of sleeping. A rate
limiter is one `cache` row under `limiter:<key>` holding its bucket counts as compact JSON.
"""

from __future__ import annotations

import importlib
import math
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from qctl.cache import limits
from qctl.cache.base import Hit, keep_trying, lock_seconds
from qctl.cache.hot_path import HotPath, statements_for
from qctl.cache.pinned import PinnedStatements
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.db.engines import get_engine, redact
from qctl.db.migrations import ensure_table, table_exists
from qctl.db.schema import cache_locks_table, cache_table
from qctl.db.transactions import first_line, table_transaction
from qctl.errors import StoreUnavailableError

FOREVER = 9_999_999_999
WRITE_RACE_ATTEMPTS = 5
PRUNE_CHANCE = 0.02
"""Laravel's lottery: about one acquire in fifty also deletes expired lock rows."""
PRUNE_BATCH = 100

T = TypeVar("T")


def _is_write_race(exc: StoreUnavailableError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, IntegrityError) or "deadlock" in str(cause).lower()


class DatabaseCacheStore:
    def __init__(self, url: str, table: str = "cache", clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = get_engine(url)
        self.autocommit = get_engine(url, autocommit=True)
        """Single statements (read, forget, acquire, release) need no BEGIN and COMMIT round trips."""
        self.table = cache_table(table)
        self.locks = cache_locks_table(f"{table}_locks")
        self.clock = clock
        self._url = url
        self._pinned = PinnedStatements(self.autocommit, url)
        self._hot: HotPath | None = None
        self._hot_known = False
        self._tables_made: set[str] = set()

    def get(self, key: str) -> str | None:
        c = self.table.c
        with self._statement("read") as conn:
            return conn.execute(select(c.value).where(c.key == key, c.expiration > self.clock.time())).scalar()

    def many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        c = self.table.c
        query = select(c.key, c.value).where(c.key.in_(list(keys)), c.expiration > self.clock.time())
        with self._statement("read") as conn:
            found = {row.key: row.value for row in conn.execute(query)}
        return [found.get(key) for key in keys]

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._connection("write") as conn:
            conn.execute(delete(self.table).where(self.table.c.key == key))
            conn.execute(insert(self.table).values(key=key, value=value, expiration=self._expiry(ttl)))

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        c = self.table.c
        try:
            with self._connection("write") as conn:
                expired = c.expiration <= self.clock.time()
                taken = conn.execute(
                    update(self.table).where(c.key == key, expired).values(value=value, expiration=self._expiry(ttl))
                ).rowcount
                if taken:
                    return True
                conn.execute(insert(self.table).values(key=key, value=value, expiration=self._expiry(ttl)))
                return True
        except StoreUnavailableError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False  # somebody holds a live value
            raise

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        return self._retrying_write_races(f"increment {key!r}", lambda: self._increment_once(key, by, ttl))

    def _increment_once(self, key: str, by: int, ttl: float | None) -> int:
        c = self.table.c
        with self._connection("increment") as conn:
            row = conn.execute(self._for_update(select(c.value, c.expiration).where(c.key == key))).first()
            if row is None:
                conn.execute(insert(self.table).values(key=key, value=str(by), expiration=self._expiry(ttl)))
                return by
            live = row.expiration > self.clock.time()
            current = int(row.value) if live and row.value.lstrip("-").isdigit() else 0
            expiration = row.expiration if current else self._expiry(ttl)
            conn.execute(update(self.table).where(c.key == key).values(value=str(current + by), expiration=expiration))
            return current + by

    def forget(self, key: str) -> bool:
        with self._statement("delete") as conn:
            return conn.execute(delete(self.table).where(self.table.c.key == key)).rowcount > 0

    def items(self, prefix: str) -> dict[str, str]:
        c = self.table.c
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(c.key, c.value).where(c.key.like(escaped + "%", escape="\\"), c.expiration > self.clock.time())
        if not self._exists():
            return {}  # a listing (`qctl workers`) never creates the table (or, on SQLite, the file)
        with self._connection("read") as conn:
            return {row.key: row.value for row in conn.execute(query)}

    # Locks: one row per key; a live row (expiration > now) is held by its owner.

    def acquire(self, key: str, owner: str, ttl: float | None) -> bool:
        hot = self._hot_path("acquire a lock", self.locks)
        if hot is not None:
            taken = hot.acquire(key, owner, lock_seconds(ttl), self._db_now())
        else:
            now = self.clock.time()
            expiration = math.ceil(now + lock_seconds(ttl))  # whole seconds, never early
            with self._statement("acquire a lock", self.locks) as conn:
                taken = self._take_lock(conn, key, owner, expiration, now)
        if random.random() < PRUNE_CHANCE:
            self.prune_expired_locks()
        return taken

    def _take_lock(self, conn: Connection, key: str, owner: str, expiration: int, now: float) -> bool:
        """One upsert that inserts the row, or takes it over only when it expired or is already `owner`'s.

        Rowcounts cannot tell (psycopg gives -1 for this upsert; MySQL's CLIENT_FOUND_ROWS counts an
        untouched row like an insert), so the row says who holds it: RETURNING on PostgreSQL, SQLite
        and MariaDB, else a read of the row this transaction just locked."""
        upsert = self._lock_upsert(key, owner, expiration, now)
        if self.engine.dialect.insert_returning:
            return bool(conn.execute(upsert.returning(self.locks.c.owner)).scalar() == owner)
        conn.execute(upsert)
        return bool(conn.execute(select(self.locks.c.owner).where(self.locks.c.key == key)).scalar() == owner)

    def _lock_upsert(self, key: str, owner: str, expiration: int, now: float) -> Any:
        c, name = self.locks.c, self.engine.dialect.name
        if name in ("postgresql", "sqlite"):  # the dialect's module: only the one in use is imported
            dialect: Any = importlib.import_module(f"sqlalchemy.dialects.{name}")
            upsert = dialect.insert(self.locks).values(key=key, owner=owner, expiration=expiration)
            return upsert.on_conflict_do_update(
                index_elements=[c.key],
                set_={"owner": upsert.excluded.owner, "expiration": upsert.excluded.expiration},
                where=or_(c.expiration <= now, c.owner == upsert.excluded.owner),
            )
        from sqlalchemy.dialects import mysql

        upsert = mysql.insert(self.locks).values(key=key, owner=owner, expiration=expiration)
        takes = or_(c.expiration <= now, c.owner == upsert.inserted.owner)
        return upsert.on_duplicate_key_update([  # owner first: the expiration's IF then sees the new owner
            ("owner", func.if_(takes, upsert.inserted.owner, c.owner)),
            ("expiration", func.if_(takes, upsert.inserted.expiration, c.expiration)),
        ])

    def block(self, key: str, owner: str, ttl: float | None, timeout: float) -> bool:
        return keep_trying(lambda: self.acquire(key, owner, ttl), timeout, self.clock)

    def release(self, key: str, owner: str) -> bool:
        hot = self._hot_path("release a lock", self.locks)
        if hot is not None:
            return hot.release(key, owner, self._db_now())
        c = self.locks.c
        with self._statement("release a lock", self.locks) as conn:
            return conn.execute(delete(self.locks).where(c.key == key, c.owner == owner, self._live_lock())).rowcount > 0

    def force_release(self, key: str) -> bool:
        hot = self._hot_path("release a lock", self.locks)
        if hot is not None:
            return hot.force_release(key, self._db_now())
        c = self.locks.c
        with self._statement("release a lock", self.locks) as conn:
            return conn.execute(delete(self.locks).where(c.key == key, self._live_lock())).rowcount > 0

    def owner(self, key: str) -> str | None:
        hot = self._hot_path("read a lock", self.locks)
        if hot is not None:
            return hot.owner(key, self._db_now())
        c = self.locks.c
        with self._statement("read a lock", self.locks) as conn:
            return conn.execute(select(c.owner).where(c.key == key, self._live_lock())).scalar()

    def prune_expired_locks(self) -> int:
        """Delete up to PRUNE_BATCH expired lock rows (acquire does this on a lottery); how many went."""
        hot = self._hot_path("prune expired locks", self.locks)
        if hot is not None:
            return hot.prune(PRUNE_BATCH, self._db_now())
        c = self.locks.c
        now = self.clock.time()
        with self._connection("prune expired locks", self.locks) as conn:
            keys = list(conn.execute(select(c.key).where(c.expiration <= now).limit(PRUNE_BATCH)).scalars())
            if not keys:
                return 0
            return conn.execute(delete(self.locks).where(c.key.in_(keys), c.expiration <= now)).rowcount

    def _live_lock(self) -> Any:
        return self.locks.c.expiration > self.clock.time()

    # Rate limits: see qctl.cache.limits for the window.

    def hit(self, key: str, limit: int, period: float) -> Hit:
        limits.check_window(limit, period)
        hot = self._hot_path("count a hit", self.table)
        if hot is not None and hot.counts_hits:
            return hot.hit(limits.LIMITER_PREFIX + key, limit, period, self._db_now())
        return self._retrying_write_races(f"count a hit on {key!r}", lambda: self._hit_once(key, limit, period))

    def _hit_once(self, key: str, limit: int, period: float) -> Hit:
        c, row_key = self.table.c, limits.LIMITER_PREFIX + key
        with self._connection("count a hit") as conn:
            row = conn.execute(self._for_update(select(c.value, c.expiration).where(c.key == row_key))).first()
            now = self.clock.time()  # read once the row is ours, so hits are counted in time order
            counts = limits.loads(row.value) if row is not None and row.expiration > now else {}
            hit, counts = limits.count_hit(counts, now, limit, period)
            if not hit.allowed:
                return hit
            values = {"value": limits.dumps(counts), "expiration": math.ceil(limits.window_end(counts, period))}
            if row is None:
                conn.execute(insert(self.table).values(key=row_key, **values))
            else:
                conn.execute(update(self.table).where(c.key == row_key).values(**values))
            return hit

    def reset_hits(self, key: str) -> None:
        with self._statement("reset hits") as conn:  # one DELETE: no BEGIN and COMMIT round trips
            conn.execute(delete(self.table).where(self.table.c.key == limits.LIMITER_PREFIX + key))

    def hits(self, key: str, period: float) -> int:
        limits.check_period(period)
        c, now = self.table.c, self.clock.time()
        with self._connection("read hits") as conn:
            value = conn.execute(select(c.value).where(c.key == limits.LIMITER_PREFIX + key, c.expiration > now)).scalar()
        return 0 if value is None else limits.counted(limits.loads(value), now, period)

    def close(self) -> None:
        self._pinned.close_all()

    def _db_now(self) -> float | None:
        """The time the pinned statements count at: None for the database's own clock, unless a test set a clock."""
        return None if self.clock is SYSTEM_CLOCK else self.clock.time()

    def _hot_path(self, action: str, table: Table) -> HotPath | None:
        """The one-statement path for this database (None: SQLite, MySQL), with `table` made sure of."""
        try:
            if table.name not in self._tables_made:  # ensure_table's own check renders the URL: not per job
                ensure_table(self.engine, table)
                self._tables_made.add(table.name)
            if not self._hot_known:
                sql = statements_for(self._pinned, self.table, self.locks)
                self._hot, self._hot_known = (None if sql is None else HotPath(self._pinned, sql)), True
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cache {redact(self._url)}: cannot {action}: {first_line(exc)}") from exc
        return self._hot

    def _expiry(self, ttl: float | None) -> int:
        return FOREVER if ttl is None else math.ceil(self.clock.time() + ttl)  # whole seconds, never early

    def _for_update(self, query: Select[Any]) -> Select[Any]:
        # SQLite has no row locks: table_transaction's BEGIN IMMEDIATE already holds the write lock.
        return query if self.engine.dialect.name == "sqlite" else query.with_for_update()

    def _retrying_write_races(self, action: str, attempt: Callable[[], T]) -> T:
        for _ in range(WRITE_RACE_ATTEMPTS):  # two processes creating the same row: the loser retries as an update
            try:
                return attempt()
            except StoreUnavailableError as exc:
                if not _is_write_race(exc):
                    raise
        raise StoreUnavailableError(f"cache {redact(self._url)}: could not {action}")

    def _exists(self) -> bool:
        try:
            return table_exists(self.engine, self.table)
        except DBAPIError as exc:
            raise StoreUnavailableError(f"cache {redact(self._url)}: cannot read: {first_line(exc)}") from exc

    def _statement(self, action: str, table: Table | None = None) -> AbstractContextManager[Connection]:
        """A connection for one statement that commits by itself (SQLite: its one engine, inside BEGIN IMMEDIATE)."""
        return table_transaction(self.engine, table if table is not None else self.table, self._url, "cache", action,
                                 StoreUnavailableError, autocommit=self.autocommit)

    def _connection(self, action: str, table: Table | None = None) -> AbstractContextManager[Connection]:
        return table_transaction(self.engine, table if table is not None else self.table, self._url, "cache", action,
                                 StoreUnavailableError)
