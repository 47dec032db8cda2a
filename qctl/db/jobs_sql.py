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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    text,
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
    reserve_in_one_round_trip: CompiledStatement | None = None
    """MariaDB/MySQL with SKIP LOCKED: (q) → the reserve's transaction as statements sent together
    (multi-statements); its one result set is what `reserve_in_one_statement` returns."""
    delete_then_reserve_in_one_round_trip: CompiledStatement | None = None
    """The same, deleting the held job (did, da) first, inside the same transaction."""
    release_now_in_one_round_trip: CompiledStatement | None = None
    """MariaDB/MySQL: (id, a, q, p) → deletes the held job and, only if it did, inserts it again
    (attempts kept), in one transaction sent as one text; its one result is 1 (released) or 0."""
    release_later_in_one_round_trip: CompiledStatement | None = None
    """The same, available `d` seconds from now."""


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
        **_one_round_trip_reserves(engine, table, available, now),
    )


def _one_round_trip_reserves(engine: Engine, table: Table, available: ColumnElement[bool], now: Any) -> dict[str, Any]:
    """MariaDB has no UPDATE … RETURNING; its connection takes several statements at once instead. The
    candidate is locked (SKIP LOCKED) into session variables, stamped and read back in one transaction:
    the same statements and locks as the driver's BEGIN … COMMIT, in one round trip instead of four."""
    if engine.dialect.name != "mysql" or not supports_skip_locked(engine):
        return {}

    def compiled(statement: Any) -> CompiledStatement:
        return CompiledStatement.of(statement, engine.dialect)

    picked: ColumnElement[Any] = literal_column("@qctl_id")
    candidate = compiled(
        select(table.c.id, table.c.reserved_at).where(available).order_by(table.c.id).limit(1).with_for_update(skip_locked=True)
    )
    held = delete(table).where(
        table.c.id == bindparam("did"), table.c.attempts == bindparam("da"), table.c.reserved_at.is_not(None)
    )
    steps = [
        CompiledStatement(f"{candidate.sql} INTO @qctl_id, @qctl_prev", candidate.defaults, None),
        compiled(update(table).where(table.c.id == picked).values(reserved_at=now, attempts=table.c.attempts + 1)),
        compiled(select(table.c.id, table.c.payload, table.c.attempts, literal_column("@qctl_prev")).where(table.c.id == picked)),
    ]
    start = [CompiledStatement("SET @qctl_id = NULL, @qctl_prev = NULL", {}, None), CompiledStatement("START TRANSACTION", {}, None)]
    end = [CompiledStatement("COMMIT", {}, None)]
    fenced = compiled(delete(table).where(
        table.c.id == bindparam("id"), table.c.attempts == bindparam("a"), table.c.reserved_at.is_not(None)
    ))
    releases = {
        name: _joined([start[1], fenced, compiled(_insert_if_deleted(table, available_at, now)),
                       CompiledStatement("SELECT ROW_COUNT()", {}, None), *end])
        for name, available_at in (("release_now_in_one_round_trip", now),
                                   ("release_later_in_one_round_trip", unix_after(engine, "d")))
    }
    return {
        "reserve_in_one_round_trip": _joined([*start, *steps, *end]),
        "delete_then_reserve_in_one_round_trip": _joined([*start, compiled(held), *steps, *end]),
        **releases,
    }


def _insert_if_deleted(table: Table, available_at: Any, now: Any) -> Any:
    """The job's row again (q, p, a), only when the statement before it deleted one row (ROW_COUNT)."""
    row = select(bindparam("q"), bindparam("p"), bindparam("a"), null(), available_at, now).where(func.row_count() == 1)
    columns = ["queue", "payload", "attempts", "reserved_at", "available_at", "created_at"]
    return insert(table).from_select(columns, row)


def _joined(statements: Sequence[CompiledStatement]) -> CompiledStatement:
    """Statements sent as one text (named parameters only; a name bound twice must mean one value)."""
    defaults: dict[str, Any] = {}
    for statement in statements:
        assert statement.positions is None
        for name, value in statement.defaults.items():
            assert defaults.setdefault(name, value) == value, name
    return CompiledStatement("; ".join(statement.sql for statement in statements), defaults, None)


@dataclass(frozen=True)
class BulkInsert:
    """`INSERT … VALUES (…), (…), …`: many jobs in one statement, ids in the order of the rows.

    Made from the one-row insert compiled in a positional parameter style, its row repeated, so
    every row is exactly the statement a single push runs (the database's clock included). On
    PostgreSQL the rows come from arrays instead (`unnest … WITH ORDINALITY`, in order): two or three
    parameters per statement rather than thousands, which psycopg would otherwise parse out of a
    50 kB text on every call.
    """

    head: str
    row: str | None
    """One job's `(…)`; None: `head` is the whole statement and takes one array per column."""
    template: tuple[Any, ...]
    """One row's parameters, the job's own (queue, payload, attempts, delay) left as None."""
    slots: tuple[int, int, int, int | None]
    """Where in a row's parameters the queue, payload, attempts and delay go (None: no delay)."""

    @property
    def parameters_per_row(self) -> int:
        return len(self.template)

    def sql(self, rows: int) -> str:
        return self.head if self.row is None else self.head + ", ".join([self.row] * rows)

    def parameters(self, items: Sequence[tuple[str, str, float]]) -> list[Any]:
        """The parameters of `sql(len(items))`: every row's, one flat list, or one list per column."""
        q, p, a, d = self.slots
        if self.row is None:
            columns: list[Any] = [[queue for _, queue, _ in items], [payload for payload, _, _ in items]]
            return columns if d is None else [*columns, [float(delay) for _, _, delay in items]]
        flat: list[Any] = []
        for payload, queue, delay in items:
            row = list(self.template)
            row[q], row[p], row[a] = queue, payload, 0
            if d is not None:
                row[d] = float(delay)
            flat += row
        return flat


def build_bulk_insert(engine: Engine, table: Table, delayed: bool) -> BulkInsert:
    if engine.dialect.name == "postgresql":
        return _bulk_insert_from_arrays(engine, table, delayed)
    dialect = engine.dialect
    if not dialect.positional:  # PyMySQL: the same dialect with %s placeholders
        dialect = cast(Any, type(dialect))(paramstyle="format")
    now: ColumnElement[Any] = literal_column(unix_now_sql(engine))
    statement = insert_job(table, available_at=unix_after(engine, "d") if delayed else now, now=now)
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    head, _, rest = compiled.string.partition(" VALUES ")
    names = tuple(compiled.positiontup or ())
    template = tuple(None if name in ("q", "p", "a", "d") else compiled.params.get(name) for name in names)
    slots = (names.index("q"), names.index("p"), names.index("a"), names.index("d") if delayed else None)
    return BulkInsert(head + " VALUES ", rest[:_closing(rest) + 1], template, slots)


def _bulk_insert_from_arrays(engine: Engine, table: Table, delayed: bool) -> BulkInsert:
    """(queues, payloads[, delays]) as arrays; the times as `insert_job` writes them on PostgreSQL."""
    name = engine.dialect.identifier_preparer.format_table(table)
    now = unix_now_sql(engine)
    later = "CAST(ceil(EXTRACT(epoch FROM clock_timestamp()) + t.d) AS BIGINT)"  # unix_after's, for t.d
    arrays = "%b::varchar[], %b::text[]" + (", %b::float8[]" if delayed else "")  # binary: no quoting
    columns = "q, p, d, n" if delayed else "q, p, n"
    sql = (f"INSERT INTO {name} (queue, payload, attempts, reserved_at, available_at, created_at) "
           f"SELECT t.q, t.p, 0, NULL, {later if delayed else now}, {now} "
           f"FROM unnest({arrays}) WITH ORDINALITY AS t({columns}) ORDER BY t.n")
    return BulkInsert(sql, None, (None,) * (3 if delayed else 2), (0, 1, 0, 2 if delayed else None))


def _closing(text: str) -> int:
    """The index of the parenthesis that closes the one `text` starts with."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    raise ValueError(f"unbalanced parentheses in {text!r}")


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


QUEUE_LIST_LIMIT = 1000


@dataclass(frozen=True)
class QueueStatistics:
    """What `status` and `monitor` read, from ranges of the (queue, reserved_at, available_at) index."""

    now: Any
    """() → the database's clock in unix seconds (bound into `sizes`, so its ranges use the index)."""
    sizes: Any
    """(q, now) → total, delayed, reserved (lease not lapsed), oldest ready job's available_at."""
    queues: Any
    """(limit) → the distinct queue names, by skipping from one to the next along the index."""


def build_queue_statistics(engine: Engine, table: Table, retry_after: int | None) -> QueueStatistics:
    c = table.c
    queue: Any = bindparam("q")
    now: Any = bindparam("now")

    def count(*where: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(table).where(c.queue == queue, *where).scalar_subquery()

    held: list[ColumnElement[bool]] = [c.reserved_at.is_not(None)]
    if retry_after is not None:
        held.append(c.reserved_at > now - retry_after)
    # not min(): PostgreSQL cannot read a min under `reserved_at IS NULL` off the (queue, reserved_at,
    # available_at) index and scans the table (200 ms on a million jobs); this ordering is the index's
    oldest = (select(c.available_at).where(c.queue == queue, c.reserved_at.is_(None), c.available_at <= now)
              .order_by(c.reserved_at, c.available_at).limit(1))
    sizes = select(
        count().label("total"),
        count(c.reserved_at.is_(None), c.available_at > now).label("delayed"),
        count(*held).label("reserved"),
        oldest.scalar_subquery().label("oldest"),
    )
    return QueueStatistics(now=select(literal_column(unix_now_sql(engine))), sizes=sizes,
                           queues=_distinct_queues(engine, table))


def state_of(reserved_at: int | None, available_at: int, now: int, retry_after: int | None) -> str:
    """'ready', 'delayed' or 'reserved', as `sizes` counts a row (a lapsed lease is ready)."""
    if reserved_at is not None:
        return "reserved" if retry_after is None or reserved_at > now - retry_after else "ready"
    return "delayed" if available_at > now else "ready"


def _distinct_queues(engine: Engine, table: Table) -> Any:
    """A loose index scan written out (no database here skips along an index for DISTINCT on its
    own in every version): each step seeks the next queue name above the last one."""
    name = engine.dialect.identifier_preparer.quote(table.name)
    return text(
        f"WITH RECURSIVE names (q) AS ("
        f" SELECT MIN(queue) FROM {name}"
        f" UNION ALL"
        f" SELECT (SELECT MIN(queue) FROM {name} WHERE queue > names.q) FROM names WHERE names.q IS NOT NULL"
        f") SELECT q FROM names WHERE q IS NOT NULL LIMIT :limit"
    )


def renew_many_statement(engine: Engine, table: Table, count: int) -> CompiledStatement:
    """(id0, a0, … id{count-1}, a{count-1}) → stamps those held jobs' reservations in one statement;
    with RETURNING (PostgreSQL, SQLite) it gives the (id, attempts) pairs it renewed — the id alone would
    not tell a stale holder from the current one — else only its row count."""
    now: ColumnElement[Any] = literal_column(unix_now_sql(engine))
    pairs = [and_(table.c.id == bindparam(f"id{n}"), table.c.attempts == bindparam(f"a{n}")) for n in range(count)]
    statement: Any = update(table).where(or_(*pairs), table.c.reserved_at.is_not(None)).values(reserved_at=now)
    if engine.dialect.update_returning:
        statement = statement.returning(table.c.id, table.c.attempts)
    return CompiledStatement.of(statement, engine.dialect)
