"""Read-only commands: within `reading_only()` no store creates a table (or, on SQLite, a file).

Kept apart from `qctl.db.migrations` so a read-only command on a Redis-only deployment does not
import SQLAlchemy to learn that it is reading only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from qctl.errors import QctlError

_reading_only: ContextVar[bool] = ContextVar("qctl_reading_only", default=False)


class TableMissingError(QctlError):
    """Under `reading_only()`: a table a store would have created is not there (so it holds nothing)."""


@contextmanager
def reading_only() -> Iterator[None]:
    """Within the block no store creates a table: a missing one raises TableMissingError instead."""
    token = _reading_only.set(True)
    try:
        yield
    finally:
        _reading_only.reset(token)


def is_reading_only() -> bool:
    return _reading_only.get()


__all__ = ["TableMissingError", "is_reading_only", "reading_only"]
