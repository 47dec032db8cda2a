"""Jobs and the application's database transactions.

`track(session_or_engine)` tells qctl about an SQLAlchemy `Session`, `sessionmaker`,
`scoped_session`, `Engine` or `Connection`. From then on every transaction it opens is a
*scope* in the thread that opened it, and a dispatch that asks to wait for the commit
(`.after_commit()`, or an `after_commit = true` connection) is *held* in the innermost
open scope instead of being pushed:

- the outermost commit pushes what its scope holds, after the database said COMMIT;
- a rollback (or a `close()` without a commit) drops it, giving back unique locks;
- a savepoint (`begin_nested()`) is a level of its own: released, its jobs move to the
  enclosing level; rolled back, they are dropped.

Scopes are thread-local: a job held in one thread's session never leaks into another's.
With no open scope a dispatch is pushed at once. Nothing here imports SQLAlchemy until
`track()` is called.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qctl.crashpoints import crash_point
from qctl.errors import QctlError

log = logging.getLogger("qctl.transactions")

_SCOPE = "qctl.scope"
"""Key of a Session's (or a pooled connection's) open scope in its `.info` dict."""


class AfterCommitPushError(QctlError):
    """The application's transaction committed, but a held job could not be queued after it."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        self.failures = failures
        first_name, first_exc = failures[0]
        more = f" (and {len(failures) - 1} more, see the log)" if len(failures) > 1 else ""
        super().__init__(f"the transaction committed but {first_name} was not queued: {first_exc}{more}")


@dataclass
class Held:
    """A dispatch waiting for its transaction: `push()` after the commit, `drop()` after a rollback."""

    name: str
    """What it is and where it goes, for errors and logs: "ShipOrder on connection 'redis'"."""
    push: Callable[[], None]
    drop: Callable[[], None] = lambda: None
    items: tuple[Any, ...] = ()
    bulk: Callable[[list[Any]], None] | None = None
    """Pushes the `items` of many held dispatches at once (one round trip per store); `push()` is
    the way back when that fails, to tell which of them could not be queued."""


@dataclass
class Scope:
    """One tracked transaction open in this thread, with a level per savepoint."""

    owner: Any
    """The Session or Connection whose transaction this is."""
    root: Any
    """The Session's root SessionTransaction; None for a Connection (its begin event comes first)."""
    is_session: bool
    levels: list[tuple[Any, list[Held]]] = field(default_factory=list)
    committed: list[Any] = field(default_factory=list)
    """Levels whose commit (or savepoint release) went through; they push (or merge) when they end."""

    def __post_init__(self) -> None:
        self.levels.append((self.root, []))

    def hold(self, held: Held) -> None:
        self.levels[-1][1].append(held)

    def begin_level(self, key: Any) -> None:
        self.levels.append((key, []))

    def has_level(self, key: Any) -> bool:
        return any(k is key for k, _ in self.levels)

    def end_level(self, key: Any, committed: bool) -> list[Held]:
        """Close a level (and any left open above it); returns what the outermost commit must push."""
        index = next((i for i in range(len(self.levels) - 1, -1, -1) if self.levels[i][0] is key), None)
        if index is None:
            return []
        ended = [held for _, group in self.levels[index:] for held in group]
        del self.levels[index:]
        self.committed = [k for k in self.committed if k is not key]
        if not committed:
            _drop_all(ended)
            return []
        if index == 0:
            return ended
        self.levels[-1][1].extend(ended)
        return []

    def bind(self) -> Any:
        """The Connection a same-transaction insert goes through (a Session's joins its transaction)."""
        return self.owner.connection() if self.is_session else self.owner

    def url(self) -> Any:
        bind = self.owner.get_bind() if self.is_session else self.owner
        return bind.engine.url

    def is_open(self) -> bool:
        owner = self.owner
        if self.is_session:  # the transaction this scope began is still the Session's
            return bool(owner.get_transaction() is self.root)
        return bool(not owner.closed and owner.in_transaction())


class _Open(threading.local):
    def __init__(self) -> None:
        self.scopes: list[Scope] = []


_open = _Open()


def current_scope() -> Scope | None:
    """The innermost tracked transaction open in this thread, or None (push at once)."""
    scopes = _open.scopes
    while scopes:
        scope = scopes[-1]
        if scope.is_open():
            return scope
        # Its end was never reported (a connection invalidated mid-transaction): nothing will commit it.
        scopes.pop()
        held = [h for _, group in scope.levels for h in group]
        if held:
            log.warning("dropping %d job(s) held for a transaction that ended without a commit", len(held))
            _drop_all(held)
    return None


def _begin(owner: Any, root: Any, is_session: bool) -> Scope:
    scope = Scope(owner, root, is_session)
    owner.info[_SCOPE] = scope
    _open.scopes.append(scope)
    return scope


def _finish(owner: Any, scope: Scope) -> None:
    if owner.info.get(_SCOPE) is scope:
        del owner.info[_SCOPE]
    with contextlib.suppress(ValueError):  # ended in another thread: that thread's list drops it lazily
        _open.scopes.remove(scope)


def _drop_all(held: list[Held]) -> None:
    for item in held:
        try:
            item.drop()
        except Exception:  # a lock we could not give back expires by itself
            log.warning("could not undo %s after a rollback", item.name, exc_info=True)


def _push_all(held: list[Held]) -> None:
    """Push every held job even when one fails; then raise one error naming what was not queued.
    Plain jobs go together (one bulk push per store), the rest one by one, in dispatch order."""
    if not held:
        return
    crash_point("after_commit_before_push")
    together: dict[Any, list[Held]] = {}
    alone: list[Held] = []
    for item in held:
        if item.bulk is not None:
            together.setdefault(item.bulk, []).append(item)
        else:
            alone.append(item)
    for bulk, group in together.items():
        try:
            bulk([ready for item in group for ready in item.items])
        except Exception:  # find out which, one at a time
            alone[:0] = group
    failures: list[tuple[str, BaseException]] = []
    for item in alone:
        try:
            item.push()
        except Exception as exc:
            log.error("after commit: %s was not queued: %s", item.name, exc)
            failures.append((item.name, exc))
    if failures:
        raise AfterCommitPushError(failures)


# --- Sessions ----------------------------------------------------------------------------


def _session_transaction_created(session: Any, transaction: Any) -> None:
    if transaction.parent is None:
        _begin(session, transaction, is_session=True)
    elif transaction.nested:
        scope = session.info.get(_SCOPE)
        if scope is not None:
            scope.begin_level(transaction)


def _session_committed(session: Any) -> None:
    scope = session.info.get(_SCOPE)
    if scope is not None:  # fires for the outermost commit and for each savepoint released
        scope.committed.append(session.get_nested_transaction() or session.get_transaction())


def _session_transaction_ended(session: Any, transaction: Any) -> None:
    scope = session.info.get(_SCOPE)
    if scope is None or not scope.has_level(transaction):
        return  # a subtransaction (a flush): it holds nothing
    committed = any(k is transaction for k in scope.committed)
    due = scope.end_level(transaction, committed)
    if transaction is scope.root:
        _finish(session, scope)
        _push_all(due)


# --- Engines and Connections -------------------------------------------------------------


def _connection_began(conn: Any) -> None:
    _begin(conn, None, is_session=False)


def _connection_scope(conn: Any) -> Scope | None:
    scope = conn.info.get(_SCOPE)
    return scope if isinstance(scope, Scope) else None


def _savepoint(conn: Any, name: str | None) -> None:
    scope = _connection_scope(conn)
    if scope is not None:  # the name is not known yet when this fires; savepoints end innermost first
        scope.begin_level(object())


def _end_savepoint(conn: Any, committed: bool) -> None:
    scope = _connection_scope(conn)
    if scope is not None and len(scope.levels) > 1:
        scope.end_level(scope.levels[-1][0], committed=committed)


def _savepoint_released(conn: Any, name: str, context: Any) -> None:
    _end_savepoint(conn, committed=True)


def _savepoint_rolled_back(conn: Any, name: str, context: Any) -> None:
    _end_savepoint(conn, committed=False)


def _connection_rolled_back(conn: Any) -> None:
    scope = _connection_scope(conn)
    if scope is not None:
        scope.end_level(scope.root, committed=False)
        _finish(conn, scope)


def _connection_committed(dbapi_connection: Any) -> None:
    """After the DBAPI commit returned: push what the connection's scope holds."""
    scope = getattr(dbapi_connection, "info", {}).get(_SCOPE)
    if not isinstance(scope, Scope):
        return
    due = scope.end_level(scope.root, committed=True)
    _finish(scope.owner, scope)
    _push_all(due)


def _wrap_commit(dialect: Any) -> None:
    """SQLAlchemy tells listeners of a Connection's commit before it happens; qctl must push after.
    The engine's dialect is wrapped (once) so the push runs when the DBAPI commit has returned."""
    if getattr(dialect, "_qctl_commit_wrapped", False):
        return
    original = dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        try:
            original(dbapi_connection)
        except BaseException:
            scope = getattr(dbapi_connection, "info", {}).get(_SCOPE)
            if isinstance(scope, Scope):  # the commit failed: nothing it held may be pushed
                scope.end_level(scope.root, committed=False)
                _finish(scope.owner, scope)
            raise
        _connection_committed(dbapi_connection)

    dialect.do_commit = do_commit
    dialect._qctl_commit_wrapped = True


# --- track() -----------------------------------------------------------------------------

_SESSION_EVENTS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("after_transaction_create", _session_transaction_created),
    ("after_commit", _session_committed),
    ("after_transaction_end", _session_transaction_ended),
)
_CONNECTION_EVENTS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("begin", _connection_began),
    ("savepoint", _savepoint),
    ("release_savepoint", _savepoint_released),
    ("rollback_savepoint", _savepoint_rolled_back),
    ("rollback", _connection_rolled_back),
)


def track(target: Any) -> Any:
    """Tell qctl about a Session, sessionmaker, scoped_session, Engine or Connection (sync only);
    returns it, so `Session = track(sessionmaker(engine))` reads naturally. Tracking twice is harmless."""
    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session, scoped_session, sessionmaker

    if type(target).__name__ in ("AsyncSession", "AsyncEngine", "AsyncConnection", "async_sessionmaker"):
        raise TypeError(
            f"qctl.transactions.track(): {type(target).__name__} is not supported; track the synchronous "
            "Session, sessionmaker or Engine (after-commit dispatch is sync-only)"
        )
    if isinstance(target, (Engine, Connection)):
        events = _CONNECTION_EVENTS
        _wrap_commit(target.dialect)
    elif isinstance(target, (Session, sessionmaker, scoped_session)) or (
        isinstance(target, type) and issubclass(target, Session)
    ):
        events = _SESSION_EVENTS
    else:
        raise TypeError(
            f"qctl.transactions.track(): expected an SQLAlchemy Session, sessionmaker, scoped_session, Engine "
            f"or Connection, got {type(target).__name__}"
        )
    for name, listener in events:
        if not event.contains(target, name, listener):
            event.listen(target, name, listener)
    return target
