"""One DBAPI connection per thread, taken from the engine's pool once and kept in autocommit mode.

The worker loop and the lease-renewal thread each pin their own connection, so no
connection is ever shared between threads, and a job pays no pool checkout, no
reset-on-return rollback and no isolation-level switch. Transactions are explicit
(`BEGIN` … `COMMIT` sent as statements). A connection that raised is thrown away and
the thread's next call pins a fresh one; a thread's connection closes when the thread
ends or when the owner closes them all. A forked child never touches its parent's
connections (closing one would end the parent's session): it pins its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.pool import PoolProxiedConnection

_inherited: list[PoolProxiedConnection] = []
"""Connections a forked child inherited: kept referenced so no finalizer ever runs on them."""


class _Pin:
    """A thread's connection and its reusable cursor; closing it is idempotent."""

    def __init__(self, connection: PoolProxiedConnection) -> None:
        self.connection: PoolProxiedConnection | None = connection
        self.cursor = connection.cursor()
        self.pid = os.getpid()

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and self.pid != os.getpid():
            _inherited.append(connection)
        elif connection is not None:
            # Never checked back in: a pinned connection is in autocommit mode, which a pooled
            # transaction must not inherit.
            with contextlib.suppress(Exception):
                connection.invalidate()

    def __del__(self) -> None:  # the thread that pinned it ended
        self.close()


class PinnedConnections:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._pins: weakref.WeakSet[_Pin] = weakref.WeakSet()
        self._lock = threading.Lock()

    def cursor(self) -> Any:
        """This thread's cursor on its pinned connection (pinning one on first use)."""
        pin: _Pin | None = getattr(self._local, "pin", None)
        if pin is None or pin.connection is None or pin.pid != os.getpid():
            pin = self._pin()
        return pin.cursor

    def discard(self) -> None:
        """Drop this thread's connection (after an error); the next call pins a new one."""
        pin: _Pin | None = getattr(self._local, "pin", None)
        if pin is not None:
            pin.close()
            self._local.pin = None

    def close_all(self) -> None:
        with self._lock:
            pins = list(self._pins)
        for pin in pins:
            pin.close()
        self._local = threading.local()

    def _pin(self) -> _Pin:
        connection = self.engine.raw_connection()
        try:
            prepare_pinned(connection.driver_connection, self.engine.dialect.name)
            pin = _Pin(connection)
        except BaseException:
            connection.invalidate()
            raise
        with self._lock:
            self._pins.add(pin)
        self._local.pin = pin
        return pin


def prepare_pinned(dbapi_connection: Any, dialect_name: str) -> None:
    """Autocommit (each statement commits on its own unless a BEGIN opened a transaction).

    On PostgreSQL the pinned connection also commits without waiting for the WAL flush
    (`synchronous_commit = off`): its statements only move jobs that a durable push
    already stored (reserve, delete, release, renew), so a database crash can at worst
    forget the last fraction of a second of them, and those jobs run again (at least
    once). Pushes and the failed store keep synchronous commits on their own connections.
    """
    if dialect_name == "sqlite":
        dbapi_connection.isolation_level = None  # the sqlite3 module then never BEGINs on its own
    elif dialect_name in ("mysql", "mariadb"):
        dbapi_connection.autocommit(True)  # PyMySQL: a method (one round trip, once)
    else:
        dbapi_connection.autocommit = True  # psycopg: an attribute, no round trip
        if dialect_name == "postgresql":
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
