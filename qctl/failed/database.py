"""The database failed-job store: Laravel's `failed_jobs` table, one row per job uuid."""

from __future__ import annotations

import datetime as dt
import json
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, select
from sqlalchemy.exc import DBAPIError

from qctl.db.engines import get_engine, redact
from qctl.db.migrations import table_exists
from qctl.db.reading import TableMissingError, reading_only
from qctl.db.schema import failed_jobs_table
from qctl.db.transactions import first_line, table_transaction
from qctl.errors import StoreUnavailableError
from qctl.failed.base import (
    FailedCounts,
    FailedFilter,
    FailedJob,
    clean_text,
    payload_to_text,
    text_to_payload,
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class DatabaseFailedJobStore:
    def __init__(self, url: str, table: str = "failed_jobs") -> None:
        self.engine = get_engine(url)
        self.table = failed_jobs_table(table)
        self._url = url

    def log(self, connection: str, queue: str, payload: bytes, exception: str, uuid: str) -> str:
        row = {
            "uuid": uuid,
            "connection": connection,
            "queue": queue,
            "payload": payload_to_text(payload),
            "exception": clean_text(exception),
            "failed_at": utc_now(),
        }
        with self._connection("record a failed job") as conn:
            conn.execute(self._insert_ignoring_duplicates(), row)
        return uuid

    def _insert_ignoring_duplicates(self) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(self.table).on_conflict_do_nothing(index_elements=["uuid"])
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(self.table).on_conflict_do_nothing(index_elements=["uuid"])
        return insert(self.table).prefix_with("IGNORE")

    def all(self) -> list[FailedJob]:
        return self._select(select(self.table).order_by(self.table.c.id.desc()))

    def search(self, wanted: FailedFilter) -> list[FailedJob]:
        """Newest first, narrowed in SQL: the class through the payload's displayName (a LIKE, so the
        rows are matched by the database, not read into Python), at most `limit` rows."""
        c = self.table.c
        query = select(self.table).order_by(c.id.desc())
        if wanted.queue is not None:
            query = query.where(c.queue == wanted.queue)
        if wanted.since is not None:
            query = query.where(c.failed_at >= wanted.since)
        if wanted.job_class is not None:
            needle = json.dumps({"displayName": wanted.job_class}, separators=(",", ":"))[1:-1]
            query = query.where(c.payload.contains(needle, autoescape=True))
        if wanted.limit is not None:
            query = query.limit(wanted.limit)
        return self._select(query)

    def find(self, uuid: str) -> FailedJob | None:
        found = self._select(select(self.table).where(self.table.c.uuid == uuid))
        return found[0] if found else None

    def find_by_row_ids(self, low: int, high: int) -> list[FailedJob]:
        query = select(self.table).where(self.table.c.id.between(low, high)).order_by(self.table.c.id)
        return self._select(query)

    def forget(self, uuid: str) -> bool:
        with self._connection("forget a failed job") as conn:
            return self.forget_in(conn, uuid)

    def forget_in(self, conn: Connection, uuid: str) -> bool:
        """Forget inside a caller's transaction (retry pushes and forgets in one)."""
        return conn.execute(delete(self.table).where(self.table.c.uuid == uuid)).rowcount > 0

    def transaction(self, action: str) -> AbstractContextManager[Connection]:
        """A transaction on the store's database, errors as StoreUnavailableError."""
        return self._connection(action)

    def flush(self, hours: float | None = None) -> int:
        return self.flush_returning(hours, None)[0]

    def flush_returning(self, hours: float | None, marker: bytes | None) -> tuple[int, list[bytes]]:
        c = self.table.c
        statement = delete(self.table)
        if hours is not None:
            statement = statement.where(c.failed_at <= utc_now() - dt.timedelta(hours=hours))
        with self._connection("flush failed jobs") as conn:
            if marker is None:
                return int(conn.execute(statement).rowcount), []
            held = case((c.payload.contains(marker.decode("utf-8"), autoescape=True), c.payload), else_=None)
            rows = conn.execute(statement.returning(held)).all()
        return len(rows), [text_to_payload(row[0]) for row in rows if row[0] is not None]

    def prune(self, before: dt.datetime) -> int:
        with self._connection("prune failed jobs") as conn:
            return int(conn.execute(delete(self.table).where(self.table.c.failed_at < before)).rowcount)

    def count(self) -> int:
        if not self._exists("count failed jobs"):
            return 0
        with self._connection("count failed jobs") as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())

    def count_by_queue(self) -> dict[tuple[str, str], FailedCounts]:
        c, now = self.table.c, utc_now()

        def since(seconds: int) -> Any:
            return func.sum(case((c.failed_at >= now - dt.timedelta(seconds=seconds), 1), else_=0))

        query = select(c.connection, c.queue, func.count(), since(3600), since(60)).group_by(c.connection, c.queue)
        try:
            with reading_only(), self._connection("count failed jobs") as conn:
                return {(str(name), str(queue)): FailedCounts(int(n), int(hour or 0), int(minute or 0))
                        for name, queue, n, hour, minute in conn.execute(query)}
        except TableMissingError:
            return {}

    def _select(self, query: Any) -> list[FailedJob]:
        if not self._exists("read failed jobs"):
            return []  # reading never creates the table (or, on SQLite, the file)
        with self._connection("read failed jobs") as conn:
            return [self._record(row) for row in conn.execute(query).mappings()]

    def _exists(self, action: str) -> bool:
        try:
            return table_exists(self.engine, self.table)
        except DBAPIError as exc:
            raise StoreUnavailableError(f"failed-job store {redact(self._url)}: cannot {action}: {first_line(exc)}") from exc

    @staticmethod
    def _record(row: Any) -> FailedJob:
        return FailedJob(
            id=int(row["id"]),
            uuid=row["uuid"],
            connection=row["connection"],
            queue=row["queue"],
            payload=text_to_payload(row["payload"]),
            exception=row["exception"],
            failed_at=row["failed_at"],
        )

    def _connection(self, action: str) -> AbstractContextManager[Connection]:
        return table_transaction(self.engine, self.table, self._url, "failed-job store", action, StoreUnavailableError)
