"""A transaction on a qctl table, with database errors turned into one-line qctl errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import DBAPIError

from qctl.db.engines import redact
from qctl.db.migrations import ensure_table
from qctl.errors import QctlError


def first_line(exc: DBAPIError) -> str:
    """The database's own message, first line only (drivers append SQL and hints)."""
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def table_transaction(
    engine: Engine, table: Table, url: str, store: str, action: str, error: type[QctlError],
    *, autocommit: Engine | None = None,
) -> Iterator[Connection]:
    """Create `table` if missing, then one transaction; a database error becomes `error`, naming the store.

    With an `autocommit` engine (`get_engine(url, autocommit=True)`) other than `engine`, a
    connection on it instead, for one statement that commits by itself (no BEGIN, no COMMIT)."""
    try:
        ensure_table(engine, table)
        with engine.begin() if autocommit is None or autocommit is engine else autocommit.connect() as conn:
            yield conn
    except DBAPIError as exc:
        raise error(f"{store} {redact(url)}: cannot {action}: {first_line(exc)}") from exc
