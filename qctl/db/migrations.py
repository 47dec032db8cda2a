"""Create the qctl tables that are missing, and render migration text for make:*-table.

Stores create their tables on first use (`ensure_table`). A read-only command (`status`,
`monitor`) runs inside `reading_only()`: there `ensure_table` creates nothing and raises
`TableMissingError` for a table that is not there, which the command reads as empty.
"""

from __future__ import annotations

import os
import threading

from sqlalchemy import Engine, Index, Table, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from qctl.db.reading import TableMissingError, is_reading_only

_ensured: set[tuple[str, str]] = set()
_lock = threading.Lock()


def ensure_table(engine: Engine, table: Table) -> None:
    """Create `table` if it is missing; checked once per process per engine and table."""
    key = (str(engine.url), table.name)
    if key in _ensured:
        return
    if is_reading_only():
        if not table_exists(engine, table.name):
            raise TableMissingError(f"table {table.name} does not exist")
        return
    with _lock:
        if key not in _ensured:
            create_missing(engine, [table])
            _ensured.add(key)


def table_exists(engine: Engine, table: Table | str) -> bool:
    """Whether `table` (a Table or a name) is there, for commands that only read: they never create a
    table — nor, on SQLite, the database file (a file that is not there holds no table, and is not opened)."""
    name = table if isinstance(table, str) else table.name
    key = (str(engine.url), name)
    if key in _ensured:
        return True
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
            return False
    if inspect(engine).has_table(name):
        with _lock:
            _ensured.add(key)  # it exists: a later write need not check again
        return True
    return False


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


def create_missing_indexes(engine: Engine, tables: list[Table]) -> list[str]:
    """`qctl migrate` only: add the indexes a table made by an older qctl lacks (never done on first
    use, where a worker would lock a big table while it builds one)."""
    inspector = inspect(engine)
    existing_tables = set(inspector.get_table_names())
    created = []
    for table in tables:
        if table.name not in existing_tables:
            continue
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name not in present:
                _create_index(engine, index)
                created.append(str(index.name))
    return created


def _create_index(engine: Engine, index: Index) -> None:
    try:
        index.create(engine)
    except DBAPIError as exc:
        if not _already_exists(exc):
            raise


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
