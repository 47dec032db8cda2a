"""Every statement the database driver runs on a jobs table, built once per table and dialect.

Times come from the database's clock. A row is available when it is not reserved
and its `available_at` has come, or when its reservation is older than
`retry_after` (the holder died or hung). Changes to a reserved row are fenced by
(id, attempts): attempts only grows, so a holder whose lease expired matches nothing.

PostgreSQL reserves in one statement (`FOR UPDATE SKIP LOCKED` in a CTE); the
others select the candidate and stamp it inside one transaction the driver opens
(`BEGIN IMMEDIATE` on SQLite, `SKIP LOCKED` on MariaDB ≥ 10.6 and MySQL ≥ 8.0.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from qctl.db.compiled import CompiledStatement
from qctl.db.engines import supports_skip_locked, unix_after, unix_now_sql


@dataclass(frozen=True)
class JobStatements:
    reserve_in_one_statement: CompiledStatement | None
    """PostgreSQL: (queue) → (id, payload, attempts, previous reserved_at) of the job it reserved."""
    delete_then_reserve: CompiledStatement | None
    """PostgreSQL: (did, da, q) → deletes the held job (did, da), then reserves as above, in one statement."""
    next_available: CompiledStatement
    """(queue) → (id, payload, attempts, reserved_at) of the oldest available job, locked if possible."""
    mark_reserved: CompiledStatement
    """(id) → stamps the reservation and counts the attempt."""
    delete_held: CompiledStatement
    renew_held: CompiledStatement
    insert_available_now: CompiledStatement
    insert_available_later: CompiledStatement
    """(q, p, a, d): available `d` seconds from now, rounded up so never early."""
    begin: str


def build_job_statements(engine: Engine, table: Table, retry_after: int | None) -> JobStatements:
    """Needs a connected engine: SKIP LOCKED support depends on the server version."""
    dialect = engine.dialect
    now: ColumnElement[Any] = literal_column(unix_now_sql(engine))
    available = _available_in_queue(table, retry_after, now)
    held = and_(
        table.c.id == bindparam("id"), table.c.attempts == bindparam("a"), table.c.reserved_at.is_not(None)
    )

    def compiled(statement: Any) -> CompiledStatement:
        return CompiledStatement.of(statement, dialect)

    next_available = select(table.c.id, table.c.payload, table.c.attempts, table.c.reserved_at)
    next_available = next_available.where(available).order_by(table.c.id).limit(1)
    if supports_skip_locked(engine):
        next_available = next_available.with_for_update(skip_locked=True)
    return JobStatements(
        reserve_in_one_statement=(
            compiled(_reserve_in_one_statement(table, available, now)) if dialect.name == "postgresql" else None
        ),
        delete_then_reserve=(
            compiled(_reserve_in_one_statement(table, available, now, after_delete=True))
            if dialect.name == "postgresql" else None
        ),
        next_available=compiled(next_available),
        mark_reserved=compiled(
            update(table).where(table.c.id == bindparam("id")).values(reserved_at=now, attempts=table.c.attempts + 1)
        ),
        delete_held=compiled(delete(table).where(held)),
        renew_held=compiled(update(table).where(held).values(reserved_at=now)),
        insert_available_now=compiled(insert_job(table, available_at=now, now=now)),
        insert_available_later=compiled(insert_job(table, available_at=unix_after(engine, "d"), now=now)),
        begin="BEGIN IMMEDIATE" if dialect.name == "sqlite" else "BEGIN",
    )


def insert_job(table: Table, available_at: Any, now: Any) -> Any:
    """(q, p, a) and whatever `available_at` binds; shared with the driver's bulk insert."""
    return insert(table).values(
        queue=bindparam("q"),
        payload=bindparam("p"),
        attempts=bindparam("a"),
        reserved_at=None,
        available_at=available_at,
        created_at=now,
    )


def _available_in_queue(table: Table, retry_after: int | None, now: Any) -> ColumnElement[bool]:
    available: ColumnElement[bool] = and_(table.c.reserved_at.is_(None), table.c.available_at <= now)
    if retry_after is not None:
        available = or_(available, table.c.reserved_at <= now - retry_after)
    return and_(table.c.queue == bindparam("q"), available)


def _reserve_in_one_statement(table: Table, available: ColumnElement[bool], now: Any, after_delete: bool = False) -> Any:
    """With `after_delete`, a data-modifying CTE also deletes the held job (did, da), fenced like
    `delete_held`. Both parts see one snapshot, so the candidate search leaves that row out (a
    lapsed lease could make it look available)."""
    candidate = select(table.c.id, table.c.reserved_at).where(available)
    if after_delete:
        candidate = candidate.where(table.c.id != bindparam("did"))
    picked = candidate.order_by(table.c.id).limit(1).with_for_update(skip_locked=True).cte("picked")
    statement = (
        update(table)
        .where(table.c.id == picked.c.id)
        .values(reserved_at=now, attempts=table.c.attempts + 1)
        .returning(table.c.id, table.c.payload, table.c.attempts, picked.c.reserved_at)
    )
    if after_delete:
        gone = delete(table).where(
            table.c.id == bindparam("did"), table.c.attempts == bindparam("da"), table.c.reserved_at.is_not(None)
        )
        statement = statement.add_cte(gone.cte("gone"))
    return statement
