"""The cache store's hot statements on the calling thread's pinned connection (`qctl.db.pinned`).

A lock or a limiter hit is then one statement on a connection already in hand: no pool
checkout, no SQLAlchemy compilation, no BEGIN or COMMIT. The connections come from an engine
of their own without a pool, so however many threads pin one (a web server dispatching unique
jobs), none waits for a pooled connection and the store's transactions keep their pool. A
connection that raised is thrown away; when it was one the server had ended (a restart, an
administrator) the statement is sent once more on a fresh one, and any failure after that is
the store's one-line `StoreUnavailableError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from qctl.db.engines import redact
from qctl.db.pinned import PinnedConnections
from qctl.errors import StoreUnavailableError

Params = Mapping[str, Any]
T = TypeVar("T")


class PinnedStatements:
    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = create_engine(engine.url, poolclass=NullPool)  # connects only when a thread pins
        self.url = url
        self.pins = PinnedConnections(self.engine)
        self._local = threading.local()

    def fetch_one(self, action: str, sql: str, params: Params) -> tuple[Any, ...] | None:
        row = self._run(action, sql, params, lambda cursor: cursor.fetchone())
        return None if row is None else tuple(row)

    def rowcount(self, action: str, sql: str, params: Params) -> int:
        return int(self._run(action, sql, params, lambda cursor: cursor.rowcount))

    def dialect(self) -> Any:
        """The engine's dialect once a connection exists (whether it is MariaDB is known only then)."""
        self._run("connect", "SELECT 1", {}, lambda cursor: cursor.fetchone())
        return self.engine.dialect

    def close_all(self) -> None:
        self.pins.close_all()
        self._local = threading.local()
        self.engine.dispose()

    def _run(self, action: str, sql: str, params: Params, read: Callable[[Any], T]) -> T:
        for attempt in (1, 2):
            reused = getattr(self._local, "worked", False)
            cursor: Any = None
            try:
                cursor = self.pins.cursor()
                cursor.execute(sql, params)
                result = read(cursor)
                self._local.worked = True
                return result
            except (self.engine.dialect.loaded_dbapi.Error, DBAPIError) as exc:  # DBAPIError: a failed connect
                ended = self._ended_by_server(exc, cursor)
                self.pins.discard()
                self._local.worked = False
                if ended and reused and attempt == 1:
                    # Ended while idle, the usual case: the statement never ran. Had it run just
                    # before the end, a second run is harmless: the owner renews, a hit counted twice errs safe.
                    continue
                raise StoreUnavailableError(f"cache {redact(self.url)}: cannot {action}: {_first_line(exc)}") from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _ended_by_server(self, exc: Any, cursor: Any) -> bool:
        if cursor is None:
            return False
        dbapi_connection = getattr(cursor, "connection", None)
        return bool(self.engine.dialect.is_disconnect(exc, dbapi_connection, cursor))


def _first_line(exc: BaseException) -> str:
    text = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
