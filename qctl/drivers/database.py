"""The database driver: the Laravel `jobs` table on SQLite, PostgreSQL or MariaDB/MySQL.

Reservation takes the oldest available row of a queue, increments `attempts` and
stamps `reserved_at`, all on the database's clock. PostgreSQL does it in one
statement (`FOR UPDATE SKIP LOCKED` inside a CTE); MariaDB/MySQL in one short
transaction; SQLite inside `BEGIN IMMEDIATE`. Delete, release and renew are
fenced by (id, attempts): the attempts count only grows, so a holder whose lease
expired (and whose job was reserved again) matches nothing. The statements live in
`qctl.db.jobs_sql`.

The worker's path (reserve, delete, release, renew) runs those statements, compiled
once, on a connection each thread pins (`qctl.db.pinned`), with no pool checkout and no
SQLAlchemy expression building. A busy worker deletes the job it finished together with
reserving the next (`pop_after`): one statement per job on PostgreSQL, one transaction
elsewhere. A chain's next link is inserted in the transaction that deletes the job before it
(`delete_and_push`). Pushing, sizes and clearing go through the pool; `push_in` inserts on
the caller's own transaction (a batch store on the same database).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, case, delete, func, select
from sqlalchemy.exc import DBAPIError

from qctl.config import ConnectionConfig
from qctl.db.compiled import CompiledStatement
from qctl.db.engines import get_engine, redact, refuses_for_good
from qctl.db.jobs_sql import (
    BulkInsert,
    JobStatements,
    QueueStatistics,
    build_bulk_insert,
    build_job_statements,
    build_queue_statistics,
    renew_many_statement,
    state_of,
)
from qctl.db.migrations import ensure_table
from qctl.db.pinned import PinnedConnections
from qctl.db.reading import TableMissingError, reading_only
from qctl.db.schema import jobs_table
from qctl.db.together import BEGIN, COMMIT, Prepared, PreparedTogether, SqlGuard, Step
from qctl.drivers.base import Cleared, QueueSizes, ReservedJob
from qctl.drivers.chunks import chunked
from qctl.errors import DriverError, StoreRefusedError

MB = 1024 * 1024
BULK_ROWS = 500
SQLITE_PARAMETERS = 999
"""The fewest bound parameters per statement an SQLite build allows (before 3.32)."""
CHUNK_CHARACTERS = 16 * MB
STATEMENT_ROOM = 4096
"""Bytes of an INSERT besides its payload: the SQL, the queue name, the other values."""


@dataclass
class DatabaseReservedJob:
    driver: DatabaseDriver
    id: int
    connection_name: str
    queue: str
    raw: bytes
    attempts: int
    reclaimed: bool
    guard: SqlGuard | None = None
    """PostgreSQL: a statement to commit before this job's deferred delete, in its round trip."""
    held: bool = False
    """Set by `pop_after` when the guard refused: the job was not deleted."""

    @property
    def key(self) -> str:
        return str(self.id)

    def delete(self) -> bool:
        return self.driver.delete_reserved(self.id, self.attempts)

    def release(self, delay: float) -> bool:
        return self.driver.release_reserved(self, delay)

    def renew(self) -> bool:
        return self.driver.renew_reserved(self.id, self.attempts)

    def delete_and_push(self, items: Sequence[tuple[str, str, float]]) -> bool:
        return self.driver.delete_and_push_reserved(self, items)


class DatabaseDriver:
    def __init__(self, config: ConnectionConfig) -> None:
        assert config.url is not None
        self.connection_name = config.name
        self.default_queue = config.queue
        self.retry_after = config.retry_after
        self.engine: Engine = get_engine(config.url)
        self.table = jobs_table(config.table)
        self._url = config.url
        self._url_key = config.url_key  # for a refusal that retrying cannot heal
        self._ready = False
        self._pinned = PinnedConnections(get_engine(config.url, multi_statements=True))
        self._statements: JobStatements | None = None
        self._statements_lock = threading.Lock()
        self._dbapi_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        self._max_packet: int | None = None
        self._queue_statistics: QueueStatistics | None = None
        self._bulk_inserts: dict[bool, BulkInsert] = {}
        self._renew_many: dict[int, CompiledStatement] = {}
        self.takes_guards = self.engine.dialect.name == "postgresql"
        """Whether a finished job's delete can carry a `SqlGuard` (see `qctl.db.together`)."""
        self._together = PreparedTogether() if self.takes_guards else None

    # --- pushing (through the pool: producers are many short-lived threads) ----------

    def push(self, payload: str, queue: str, delay: float = 0) -> None:
        self.bulk([(payload, queue, delay)])

    def bulk(self, items: Sequence[tuple[str, str, float]]) -> None:
        if not items:
            return
        self._check_sizes(items)
        with self._connection("push") as conn:
            self._insert(conn, items)

    def push_in(self, conn: Connection, items: Sequence[tuple[str, str, float]]) -> None:
        """Insert the jobs in the caller's open transaction (a batch store adds and counts them in one)."""
        if not items:
            return
        with self._database_errors("push"):
            self._ensure_table_in(conn)
            self._check_sizes(items)
            self._insert(conn, items)

    def _insert(self, conn: Connection, items: Sequence[tuple[str, str, float]]) -> None:
        """Multi-row INSERTs of up to BULK_ROWS jobs each, in order: those ready now, then the delayed."""
        for delayed in (False, True):
            rows = [item for item in items if (item[2] > 0) is delayed]
            if not rows:
                continue
            statement = self._bulk_insert(delayed)
            most = BULK_ROWS if self.engine.dialect.name != "sqlite" else SQLITE_PARAMETERS // statement.parameters_per_row
            for chunk in chunked(rows, most, self._chunk_characters()):
                conn.exec_driver_sql(statement.sql(len(chunk)), tuple(statement.parameters(chunk)))

    def _bulk_insert(self, delayed: bool) -> BulkInsert:
        found = self._bulk_inserts.get(delayed)
        if found is None:
            found = self._bulk_inserts[delayed] = build_bulk_insert(self.engine, self.table, delayed)
        return found

    def _chunk_characters(self) -> int:
        """Payload characters one INSERT may carry: on MariaDB/MySQL well inside `max_allowed_packet`
        (a character may take four bytes), elsewhere a size that keeps a statement's memory modest."""
        if self.engine.dialect.name != "mysql":
            return CHUNK_CHARACTERS
        return max(1, self._packet_limit() // 4 - STATEMENT_ROOM)

    def _check_sizes(self, items: Sequence[tuple[str, str, float]]) -> None:
        """MariaDB/MySQL drop the connection on a statement over `max_allowed_packet`; say so before
        sending, naming the limit, rather than report a lost connection after."""
        if self.engine.dialect.name != "mysql":
            return
        limit = self._packet_limit()
        largest = max(len(payload) for payload, _, _ in items)  # characters; a rough lower bound on bytes
        if largest + STATEMENT_ROOM <= limit:
            return
        size = max(len(payload.encode("utf-8")) for payload, _, _ in items)
        if size + STATEMENT_ROOM > limit:
            raise DriverError(
                f"database {redact(self._url)}: a job payload of {size / MB:.1f} MB is over the server's "
                f"max_allowed_packet ({limit / MB:.1f} MB); raise max_allowed_packet or keep big data out of the job"
            )

    def _packet_limit(self) -> int:
        if self._max_packet is None:
            with self._connection("push") as conn:
                self._max_packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        return self._max_packet

    # --- the worker's path: compiled statements on this thread's pinned connection --

    def pop(self, queues: Sequence[str]) -> DatabaseReservedJob | None:
        return self.pop_after(None, queues)

    def pop_after(self, finished: ReservedJob | None, queues: Sequence[str]) -> DatabaseReservedJob | None:
        """Delete `finished` (fenced, as its delete() would) and reserve the next job by queue priority.

        The delete rides with the first queue's reserve: on PostgreSQL in the same statement, elsewhere
        in the same transaction, so a busy worker spends one round trip (PostgreSQL) and one commit per
        job fewer than deleting on its own.
        """
        held = finished if isinstance(finished, DatabaseReservedJob) and finished.driver is self else None
        if finished is not None and held is None:
            finished.delete()
        with self._pinned_cursor("reserve") as (cursor, sql):
            for queue in queues:
                if held is not None and held.guard is not None:
                    row = self._reserve_guarded(cursor, sql, queue, held)
                else:
                    row = self._reserve(cursor, sql, queue, held)
                held = None
                if row is not None:
                    job_id, payload, attempts, previous_reservation = row
                    raw = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
                    reclaimed = previous_reservation is not None
                    return DatabaseReservedJob(self, job_id, self.connection_name, queue, raw, attempts, reclaimed)
        if held is not None and held.guard is not None:  # no queue to reserve from: settle the long way
            held.guard, held.held = None, True
        elif held is not None:
            held.delete()
        return None

    def _reserve_guarded(self, cursor: Any, sql: JobStatements, queue: str, held: DatabaseReservedJob) -> tuple[Any, ...] | None:
        """The guard, a commit, then the delete-and-reserve: one round trip. A refusing guard leaves
        `held` reserved (its `held` flag set) and the next job is reserved on its own."""
        guard = held.guard
        assert guard is not None and self._together is not None and sql.delete_then_reserve is not None
        reserve = sql.delete_then_reserve
        values = cast(Mapping[str, Any], reserve.parameters({"q": queue, "did": held.id, "da": held.attempts}))
        steps: list[Step] = [BEGIN, (guard.statement, guard.values), COMMIT, (prepared_of(reserve), values)]
        try:
            results = self._together.run(cursor.connection, steps)
        except guard.refusal:
            held.guard, held.held = None, True
            return self._reserve(cursor, sql, queue, None)
        held.guard = None  # an error above keeps it: the next try runs the guard again (it is idempotent)
        for _ in range(3):  # past BEGIN, the guard's row and COMMIT
            results.nextset()
        row = results.fetchone()
        return tuple(row) if row is not None else None

    @staticmethod
    def _reserve(cursor: Any, sql: JobStatements, queue: str, held: DatabaseReservedJob | None) -> tuple[Any, ...] | None:
        if held is not None and sql.delete_then_reserve is not None:
            return _fetch_one(cursor, sql.delete_then_reserve, {"q": queue, "did": held.id, "da": held.attempts})
        if sql.reserve_in_one_statement is not None:
            return _fetch_one(cursor, sql.reserve_in_one_statement, {"q": queue})
        if held is not None and sql.delete_then_reserve_in_one_round_trip is not None:
            values = {"q": queue, "did": held.id, "da": held.attempts}
            return _fetch_one_of_many(cursor, sql.delete_then_reserve_in_one_round_trip, values)
        if sql.reserve_in_one_round_trip is not None:
            return _fetch_one_of_many(cursor, sql.reserve_in_one_round_trip, {"q": queue})
        with _transaction(cursor, sql.begin):
            if held is not None:
                _execute(cursor, sql.delete_held, {"id": held.id, "a": held.attempts})
            found = _fetch_one(cursor, sql.next_available, {"q": queue})
            if found is None:
                return None
            job_id, payload, attempts, previous = found
            _execute(cursor, sql.mark_reserved, {"id": job_id})
        # The row was locked (SKIP LOCKED, or SQLite's single writer) from the read to the update.
        return job_id, payload, attempts + 1, previous

    def delete_reserved(self, job_id: int, attempts: int) -> bool:
        with self._pinned_cursor("delete") as (cursor, sql):
            return _execute(cursor, sql.delete_held, {"id": job_id, "a": attempts}) == 1

    def release_reserved(self, job: DatabaseReservedJob, delay: float) -> bool:
        """Delete and re-insert, so the released job goes to the back of its queue (as in Laravel)."""
        row = {"q": job.queue, "p": job.raw.decode("utf-8"), "a": job.attempts, "d": float(delay)}
        with self._pinned_cursor("release") as (cursor, sql):
            together = sql.release_later_in_one_round_trip if delay > 0 else sql.release_now_in_one_round_trip
            if together is not None:
                released = _fetch_one_of_many(cursor, together, {**row, "id": job.id})
                return released is not None and int(released[0]) == 1
        with self._pinned_cursor("release") as (cursor, sql), _transaction(cursor, sql.begin):
            if _execute(cursor, sql.delete_held, {"id": job.id, "a": job.attempts}) != 1:
                return False
            _execute(cursor, sql.insert_available_later if delay > 0 else sql.insert_available_now, row)
            return True

    def delete_and_push_reserved(self, job: DatabaseReservedJob, items: Sequence[tuple[str, str, float]]) -> bool:
        """Delete the held job and insert `items` in one transaction: both or neither.

        On PostgreSQL the pinned connection commits without waiting for the WAL flush; a commit a
        crash forgets takes the delete with the inserts, so the job runs again and pushes again.
        """
        if items:
            self._check_sizes(items)
        with self._pinned_cursor("delete and push") as (cursor, sql), _transaction(cursor, sql.begin):
            if _execute(cursor, sql.delete_held, {"id": job.id, "a": job.attempts}) != 1:
                return False  # nothing changed: the commit that follows is a rollback
            for payload, queue, delay in items:
                row = {"q": queue, "p": payload, "a": 0, "d": float(delay)}
                _execute(cursor, sql.insert_available_later if delay > 0 else sql.insert_available_now, row)
            return True

    def renew_reserved(self, job_id: int, attempts: int) -> bool:
        with self._pinned_cursor("renew") as (cursor, sql):
            return _execute(cursor, sql.renew_held, {"id": job_id, "a": attempts}) == 1

    def renew_many(self, jobs: Sequence[ReservedJob]) -> list[bool]:
        """Renew several held jobs' reservations in one statement (a worker with several slots); which
        were still held comes from RETURNING, or, without it, from renewing one by one when some were not."""
        held = [cast(DatabaseReservedJob, job) for job in jobs]
        statement = self._renew_many.get(len(held))
        if statement is None:
            statement = self._renew_many[len(held)] = renew_many_statement(self._pinned.engine, self.table, len(held))
        values = {name: value for n, job in enumerate(held) for name, value in ((f"id{n}", job.id), (f"a{n}", job.attempts))}
        with self._pinned_cursor("renew") as (cursor, _):
            count = _execute(cursor, statement, values)
            renewed = {(row[0], row[1]) for row in cursor.fetchall()} if self.engine.dialect.update_returning else None
        if renewed is not None:
            return [(job.id, job.attempts) in renewed for job in held]
        if count == len(held):
            return [True] * len(held)
        return [job.renew() for job in held]

    # --- inspecting -----------------------------------------------------------------

    def size(self, queue: str) -> int:
        with self._connection("size") as conn:
            query = select(func.count()).select_from(self.table).where(self.table.c.queue == queue)
            return int(conn.execute(query).scalar_one())

    def sizes(self, queue: str) -> QueueSizes:
        """Counts from index ranges (no row is read); a missing table is an empty queue, left uncreated."""
        try:
            with reading_only(), self._connection("read sizes") as conn:
                statistics = self._statistics()
                now = int(conn.execute(statistics.now).scalar_one())
                total, delayed, reserved, oldest = conn.execute(statistics.sizes, {"q": queue, "now": now}).one()
        except TableMissingError:
            return QueueSizes(queue)
        return QueueSizes(queue, int(total) - int(delayed) - int(reserved), int(delayed), int(reserved),
                          None if oldest is None else float(max(0, now - int(oldest))))

    def queues_with_jobs(self, limit: int) -> list[str]:
        try:
            with reading_only(), self._connection("list queues") as conn:
                return [str(row[0]) for row in conn.execute(self._statistics().queues, {"limit": limit})]
        except TableMissingError:
            return []

    def _statistics(self) -> QueueStatistics:
        if self._queue_statistics is None:
            self._queue_statistics = build_queue_statistics(self.engine, self.table, self.retry_after)
        return self._queue_statistics

    def clear(self, queue: str) -> int:
        with self._connection("clear") as conn:
            return int(conn.execute(delete(self.table).where(self.table.c.queue == queue)).rowcount)

    def clear_returning(self, queue: str, marker: bytes) -> Cleared:
        """Clear the queue in one statement; how many per state and the deleted payloads that contain `marker`."""
        c = self.table.c
        held = case((c.payload.contains(marker.decode("utf-8"), autoescape=True), c.payload), else_=None)
        with self._connection("clear") as conn:
            now = int(conn.execute(self._statistics().now).scalar_one())
            rows = conn.execute(delete(self.table).where(c.queue == queue)
                                .returning(c.reserved_at, c.available_at, held)).all()
        states = Counter(state_of(row[0], row[1], now, self.retry_after) for row in rows)
        return Cleared(states["ready"], states["delayed"], states["reserved"],
                       [row[2].encode("utf-8") for row in rows if row[2] is not None])

    def close(self) -> None:
        self._pinned.close_all()
        self.engine.dispose()
        if self._pinned.engine is not self.engine:
            self._pinned.engine.dispose()

    # --- plumbing ---------------------------------------------------------------------

    def _ensure_table(self) -> None:
        if not self._ready:
            ensure_table(self.engine, self.table)
            self._ready = True

    def _ensure_table_in(self, conn: Connection) -> None:
        """SQLite: create a missing table in the caller's transaction, whose write lock a second
        connection would wait for; elsewhere on a connection of its own (MySQL commits on DDL)."""
        if self._ready:
            return
        if conn.dialect.name == "sqlite":
            self.table.create(conn, checkfirst=True)  # not `_ready`: the caller may roll it back
        else:
            self._ensure_table()

    @contextmanager
    def _connection(self, action: str) -> Iterator[Connection]:
        """A pooled connection in a transaction, with errors as one-line DriverErrors."""
        with self._database_errors(action):
            self._ensure_table()
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _database_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise self._driver_error(action, exc.orig if exc.orig is not None else exc) from exc

    @contextmanager
    def _pinned_cursor(self, action: str) -> Iterator[tuple[Any, JobStatements]]:
        """This thread's cursor and the compiled statements; a failed connection is replaced next time."""
        try:
            self._ensure_table()
            cursor = self._pinned.cursor()
            yield cursor, self._statements or self._compile_statements()
        except DBAPIError as exc:  # raised while pinning a new connection
            raise self._driver_error(action, exc.orig if exc.orig is not None else exc) from exc
        except self._dbapi_error as exc:
            self._pinned.discard()
            raise self._driver_error(action, exc) from exc

    def _compile_statements(self) -> JobStatements:
        with self._statements_lock:  # after the first connection: SKIP LOCKED depends on the server version
            if self._statements is None:
                self._statements = build_job_statements(self._pinned.engine, self.table, self.retry_after)
            return self._statements

    def _driver_error(self, action: str, exc: BaseException) -> DriverError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if refuses_for_good(exc):
            where = f"{self._url_key}: " if self._url_key else ""
            return StoreRefusedError(f"{where}database {redact(self._url)} refused: {reason}")
        return DriverError(f"database {redact(self._url)}: {action} failed: {reason}")


_PREPARED: dict[str, Prepared] = {}


def prepared_of(statement: CompiledStatement) -> Prepared:
    found = _PREPARED.get(statement.sql)
    if found is None:
        found = _PREPARED[statement.sql] = Prepared.of(statement.sql)
    return found


def _execute(cursor: Any, statement: CompiledStatement, values: Mapping[str, Any]) -> int:
    cursor.execute(statement.sql, statement.parameters(values))
    return int(cursor.rowcount)


def _fetch_one(cursor: Any, statement: CompiledStatement, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    cursor.execute(statement.sql, statement.parameters(values))
    row = cursor.fetchone()
    return tuple(row) if row is not None else None


def _fetch_one_of_many(cursor: Any, statement: CompiledStatement, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Statements sent as one text: the first row of the result sets, every result read (the next
    statement on this connection must not find one still waiting)."""
    cursor.execute(statement.sql, statement.parameters(values))
    row = None
    while True:
        if row is None and cursor.description is not None:
            row = cursor.fetchone()
        if not cursor.nextset():
            return tuple(row) if row is not None else None


@contextmanager
def _transaction(cursor: Any, begin: str) -> Iterator[None]:
    """An explicit transaction on an autocommit connection; rolled back if the body raises."""
    cursor.execute(begin)
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # a broken connection: the caller discards it
            cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")


__all__ = ["DatabaseDriver", "DatabaseReservedJob"]
