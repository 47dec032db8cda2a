"""The database driver: the Laravel `jobs` table on SQLite, PostgreSQL or MariaDB/MySQL.

Reservation takes the oldest available row of a queue, increments `attempts` and
stamps `reserved_at`, all on the database's clock. PostgreSQL does it in one
statement (`FOR UPDATE SKIP LOCKED` inside a CTE); MariaDB/MySQL in one short
transaction; SQLite inside `BEGIN IMMEDIATE`. Delete, release and renew are
fenced by (id, attempts): the attempts count only grows, so a holder whose lease
expired (and whose job was reserved again) matches nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from qctl.config import ConnectionConfig
from qctl.db.engines import get_engine, redact, supports_skip_locked, unix_after, unix_now_sql
from qctl.db.migrations import ensure_table
from qctl.db.schema import jobs_table
from qctl.errors import DriverError


@dataclass
class DatabaseReservedJob:
    driver: DatabaseDriver
    id: int
    connection_name: str
    queue: str
    raw: bytes
    attempts: int
    reclaimed: bool

    @property
    def key(self) -> str:
        return str(self.id)

    def delete(self) -> bool:
        return self.driver.delete_reserved(self.id, self.attempts)

    def release(self, delay: float) -> bool:
        return self.driver.release_reserved(self, delay)

    def renew(self) -> bool:
        return self.driver.renew_reserved(self.id, self.attempts)


class DatabaseDriver:
    def __init__(self, config: ConnectionConfig) -> None:
        assert config.url is not None
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after = config.retry_after
        self.engine: Engine = get_engine(config.url)
        self.table = jobs_table(config.table)
        self._url = config.url
        self._ready = False
        self._dialect = self.engine.dialect.name
        self._autocommit = self.engine if self._dialect == "sqlite" else self.engine.execution_options(isolation_level="AUTOCOMMIT")

    # --- pushing ------------------------------------------------------------------

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        self.bulk([(payload, queue, delay)])

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        if not items:
            return
        now = [{"q": queue, "p": payload, "a": 0} for payload, queue, delay in items if delay <= 0]
        later = [{"q": queue, "p": payload, "a": 0, "d": float(delay)} for payload, queue, delay in items if delay > 0]
        with self._connection("push", autocommit=len(items) == 1) as conn:
            if now:
                conn.execute(self._insert_statement(delayed=False), now)
            if later:
                conn.execute(self._insert_statement(delayed=True), later)

    def _insert_statement(self, delayed: bool) -> Any:
        now = self._now()
        available_at = unix_after(self.engine, "d") if delayed else now
        return insert(self.table).values(
            queue=bindparam("q"),
            payload=bindparam("p"),
            attempts=bindparam("a"),
            reserved_at=None,
            available_at=available_at,
            created_at=now,
        )

    # --- reserving ----------------------------------------------------------------

    def pop(self, queues: Sequence[str]) -> DatabaseReservedJob | None:
        for queue in queues:
            job = self._reserve(queue)
            if job is not None:
                return job
        return None

    def _reserve(self, queue: str) -> DatabaseReservedJob | None:
        if self._dialect == "postgresql":
            with self._connection("reserve", autocommit=True) as conn:
                row = conn.execute(self._reserve_in_one_statement(queue)).first()
        else:
            with self._connection("reserve") as conn:
                row = self._reserve_in_transaction(conn, queue)
        if row is None:
            return None
        job_id, payload, attempts, previous_reservation = row
        return DatabaseReservedJob(
            self, job_id, self.connection_name, queue, payload.encode("utf-8"), attempts,
            reclaimed=previous_reservation is not None,
        )

    def _next_available(self, queue: str) -> Any:
        now = self._now()
        available: ColumnElement[bool] = and_(self.table.c.reserved_at.is_(None), self.table.c.available_at <= now)
        if self.retry_after is not None:
            available = or_(available, self.table.c.reserved_at <= now - self.retry_after)
        query = (
            select(self.table.c.id, self.table.c.payload, self.table.c.reserved_at)
            .where(self.table.c.queue == queue, available)
            .order_by(self.table.c.id)
            .limit(1)
        )
        if supports_skip_locked(self.engine):
            query = query.with_for_update(skip_locked=True)
        return query

    def _reserve_in_one_statement(self, queue: str) -> Any:
        picked = self._next_available(queue).cte("picked")
        return (
            update(self.table)
            .where(self.table.c.id == picked.c.id)
            .values(reserved_at=self._now(), attempts=self.table.c.attempts + 1)
            .returning(self.table.c.id, self.table.c.payload, self.table.c.attempts, picked.c.reserved_at)
        )

    def _reserve_in_transaction(self, conn: Connection, queue: str) -> tuple[Any, ...] | None:
        found = conn.execute(self._next_available(queue)).first()
        if found is None:
            return None
        job_id, payload, previous = found
        conn.execute(
            update(self.table)
            .where(self.table.c.id == job_id)
            .values(reserved_at=self._now(), attempts=self.table.c.attempts + 1)
        )
        attempts = conn.execute(select(self.table.c.attempts).where(self.table.c.id == job_id)).scalar_one()
        return job_id, payload, attempts, previous

    # --- fenced changes to a reserved job -------------------------------------------

    def _held(self, job_id: int, attempts: int) -> ColumnElement[bool]:
        return and_(self.table.c.id == job_id, self.table.c.attempts == attempts, self.table.c.reserved_at.is_not(None))

    def delete_reserved(self, job_id: int, attempts: int) -> bool:
        with self._connection("delete", autocommit=True) as conn:
            return conn.execute(delete(self.table).where(self._held(job_id, attempts))).rowcount == 1

    def release_reserved(self, job: DatabaseReservedJob, delay: float) -> bool:
        """Delete and re-insert, so the released job goes to the back of its queue (as in Laravel)."""
        with self._connection("release") as conn:
            if conn.execute(delete(self.table).where(self._held(job.id, job.attempts))).rowcount != 1:
                return False
            row = {"q": job.queue, "p": job.raw.decode("utf-8"), "a": job.attempts, "d": float(delay)}
            conn.execute(self._insert_statement(delayed=delay > 0), row)
            return True

    def renew_reserved(self, job_id: int, attempts: int) -> bool:
        statement = update(self.table).where(self._held(job_id, attempts)).values(reserved_at=self._now())
        with self._connection("renew", autocommit=True) as conn:
            return conn.execute(statement).rowcount == 1

    # --- inspecting -----------------------------------------------------------------

    def size(self, queue: str) -> int:
        with self._connection("size", autocommit=True) as conn:
            query = select(func.count()).select_from(self.table).where(self.table.c.queue == queue)
            return int(conn.execute(query).scalar_one())

    def clear(self, queue: str) -> int:
        with self._connection("clear") as conn:
            return int(conn.execute(delete(self.table).where(self.table.c.queue == queue)).rowcount)

    def close(self) -> None:
        self.engine.dispose()

    # --- plumbing ---------------------------------------------------------------------

    def _now(self) -> Any:
        return literal_column(unix_now_sql(self.engine))

    @contextmanager
    def _connection(self, action: str, autocommit: bool = False) -> Iterator[Connection]:
        """A connection in a transaction (or autocommit), with errors as one-line DriverErrors."""
        try:
            if not self._ready:
                ensure_table(self.engine, self.table)
                self._ready = True
            engine = self._autocommit if autocommit else self.engine
            with engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise DriverError(
                f"database {redact(self._url)}: {action} failed: {reason}"
            ) from exc


__all__ = ["DatabaseDriver", "DatabaseReservedJob"]
