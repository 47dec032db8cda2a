"""SQLAlchemy statements compiled once into the DBAPI driver's own SQL text and parameter style.

A worker runs the same few statements for every job; building the expression and
looking it up in SQLAlchemy's compiled cache cost more CPU than the database spent on
the statement. A CompiledStatement is rendered for one dialect at start-up and then
executed straight on a DBAPI cursor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True)
class CompiledStatement:
    sql: str
    defaults: Mapping[str, Any]
    """Values SQLAlchemy bound at build time (LIMIT 1, retry_after); callers' values win."""
    positions: tuple[str, ...] | None
    """Parameter names in order, for positional paramstyles (qmark, format); None for named ones."""

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> CompiledStatement:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, dict(compiled.params), positions)

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        merged = {**self.defaults, **values}
        if self.positions is None:
            return merged
        return tuple(merged[name] for name in self.positions)
