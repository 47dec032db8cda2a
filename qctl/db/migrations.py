"""Create the qctl tables that are missing, and render migration text for make:*-table."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, Table, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

_ensured: set[tuple[str, str]] = set()
_lock = threading.Lock()


def ensure_table(engine: Engine, table: Table) -> None:
    """Create `table` if it is missing; checked once per process per engine and table."""
    key = (str(engine.url), table.name)
    if key in _ensured:
        return
    with _lock:
        if key not in _ensured:
            create_missing(engine, [table])
            _ensured.add(key)


def create_missing(engine: Engine, tables: list[Table]) -> list[str]:
    """Create each table (and its indexes) that does not exist yet; returns the names created."""
    existing = set(inspect(engine).get_table_names())
    created = []
    for table in tables:
        if table.name in existing:
            continue
        try:
            table.create(engine, checkfirst=True)
            created.append(table.name)
        except DBAPIError as exc:
            # Another process created it between our check and our CREATE.
            if not _already_exists(exc):
                raise
    return created


def _already_exists(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "already exists" in text or "duplicate" in text


def render_sql(table: Table, engine: Engine) -> str:
    """The CREATE TABLE and CREATE INDEX statements for the configured dialect."""
    statements = [str(CreateTable(table).compile(engine)).strip()]
    statements += [str(CreateIndex(index).compile(engine)).strip() for index in sorted(table.indexes, key=lambda i: str(i.name))]
    return ";\n\n".join(statements) + ";\n"


def forget_ensured() -> None:
    with _lock:
        _ensured.clear()
