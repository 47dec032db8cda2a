"""One SQLAlchemy engine per URL per process, tuned per dialect.

SQLite runs in WAL mode and every transaction starts with `BEGIN IMMEDIATE`, so
several worker processes on one file take the write lock up front instead of
failing with "database is locked" when a read snapshot tries to become a writer.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from qctl.errors import ConfigError

_engines: dict[tuple[str, bool, bool], Engine] = {}
_lock = threading.Lock()

_DRIVER_FOR = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
SQLITE_BUSY_TIMEOUT_MS = 30_000
EXTRA_FOR_DRIVER = {"psycopg": ("PostgreSQL", "postgres"), "pymysql": ("MySQL/MariaDB", "mysql")}
"""The database drivers qctl's extras install: a missing one is named with the pip command that adds it."""


def missing_driver(exc: ImportError) -> str:
    module = (exc.name or "").partition(".")[0]
    if module not in EXTRA_FOR_DRIVER:
        return str(exc)
    kind, extra = EXTRA_FOR_DRIVER[module]
    return f"the {kind} driver {module!r} is not installed: pip install 'qctl[{extra}]'"


def normalise_url(url: str) -> str:
    """Pick the drivers qctl ships with when a URL names only the database kind."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _DRIVER_FOR:
        return f"{_DRIVER_FOR[scheme]}://{rest}"
    return url


def get_engine(url: str, *, autocommit: bool = False, multi_statements: bool = False) -> Engine:
    """The process's engine for `url`. With `autocommit`, a second pool whose connections commit
    each statement on their own and are never rolled back on return: one statement, one round
    trip, for stores whose writes are single statements (SQLite keeps its one engine). On
    PostgreSQL its commits do not wait for the WAL flush (`synchronous_commit = off`, as the
    worker's own connection): a crash of the database server can forget the last fraction of a
    second of them — for the cache store, a lock taken or a hit counted just before the crash.

    With `multi_statements`, on MariaDB/MySQL a pool of its own whose connections take several
    statements in one text (the worker's reserve: one round trip); elsewhere the plain engine."""
    with _lock:
        multi = multi_statements and url.startswith(("mysql", "mariadb"))
        key = (url, autocommit and not url.startswith("sqlite"), multi)
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create(url, autocommit=key[1], multi_statements=multi)
        return engine


def _forget_parent_pools() -> None:
    """In a forked child: fresh pools, leaving the parent's connections open and untouched."""
    for engine in list(_engines.values()):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_pools)


def dispose_all() -> None:
    """Drop every pooled connection (tests, and children after a fork)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


MULTI_STATEMENTS = 1 << 16
"""The MySQL protocol's CLIENT_MULTI_STATEMENTS capability (PyMySQL's and mysqlclient's constant)."""


def _create(url: str, autocommit: bool = False, multi_statements: bool = False) -> Engine:
    try:
        parsed = make_url(normalise_url(url))
        kwargs: dict[str, Any] = {"future": True}
        if parsed.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None}
        else:
            # Every thread that uses a store keeps one connection of it pinned (qctl.db.pinned): a
            # worker of N slots holds N at once, so no fixed cap fits; the server's own limit is the one.
            kwargs["pool_size"] = 5
            kwargs["max_overflow"] = -1
            kwargs["pool_recycle"] = 3600
        if autocommit:
            kwargs["isolation_level"] = "AUTOCOMMIT"
            kwargs["pool_reset_on_return"] = None  # no transaction is ever left open to roll back
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        raise ConfigError(f"database url {redact(url)!r}: {missing_driver(exc)}") from None
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"database url {redact(url)!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    if autocommit and engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def no_flush_wait(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")

    if autocommit and engine.dialect.name in ("mysql", "mariadb"):
        # PyMySQL sends COMMIT and ROLLBACK even in autocommit mode, where they have nothing to
        # end: a round trip each. This engine's own dialect instance skips them.
        engine.dialect.do_commit = engine.dialect.do_rollback = lambda dbapi_connection: None  # type: ignore[method-assign]
    if multi_statements:
        @event.listens_for(engine, "do_connect")
        def take_several_statements(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
            params["client_flag"] = params.get("client_flag", 0) | MULTI_STATEMENTS  # keeps FOUND_ROWS
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


REFUSED_BY_POSTGRESQL = ("password authentication failed", "no password supplied", "does not exist",
                         "pg_hba.conf rejects", "Peer authentication failed")
REFUSED_BY_MYSQL = {1044, 1045, 1049, 1698}
"""Access denied (to the server or the database), unknown database: these never heal by retrying."""


def refuses_for_good(exc: BaseException) -> bool:
    """Whether a DBAPI error means the server turns this URL away for good: a wrong user or password,
    a database that does not exist (not a server that is down, which a retry may outlast)."""
    if type(exc).__module__.startswith("pymysql"):
        return bool(exc.args) and exc.args[0] in REFUSED_BY_MYSQL
    if type(exc).__module__.startswith("psycopg"):
        text = str(exc)
        return "FATAL" in text and any(reason in text for reason in REFUSED_BY_POSTGRESQL)
    return False


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def same_database(a: Any, b: Any) -> bool:
    """Whether two URLs (strings or URL objects) name the same database: the same server, port, user and
    database (the driver may differ: `postgresql://` and `postgresql+psycopg://` are one database); for
    SQLite, the same file."""
    first, second = make_url(normalise_url(str(a)) if isinstance(a, str) else a), make_url(b if not isinstance(b, str) else normalise_url(b))
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        paths = [u.database or "" for u in (first, second)]
        if any(path in ("", ":memory:") for path in paths):
            return False
        return os.path.realpath(paths[0]) == os.path.realpath(paths[1])
    def key(url: Any) -> tuple[Any, ...]:
        return (url.host or "localhost", url.port, url.username, url.database)
    return key(first) == key(second)


def supports_skip_locked(engine: Engine) -> bool:
    dialect = engine.dialect
    if dialect.name == "postgresql":
        return True
    if dialect.name in ("mysql", "mariadb"):
        version = dialect.server_version_info or (0,)
        is_mariadb = getattr(dialect, "is_mariadb", False)
        return version >= ((10, 6) if is_mariadb else (8, 0, 1))
    return False


def unix_now_sql(engine: Engine) -> str:
    """The database's clock as whole unix seconds, so skewed worker hosts agree on lease times."""
    name = engine.dialect.name
    if name == "postgresql":
        return "CAST(FLOOR(EXTRACT(EPOCH FROM CLOCK_TIMESTAMP())) AS BIGINT)"
    if name in ("mysql", "mariadb"):
        return "UNIX_TIMESTAMP()"
    return "CAST(strftime('%s','now') AS INTEGER)"


def unix_after(engine: Engine, param: str) -> Any:
    """Whole unix seconds, rounded up, `param` seconds from the database's now: never early."""
    from sqlalchemy import BigInteger, Float, Integer, bindparam, cast, func

    seconds = bindparam(param, type_=Float)  # typed: PostgreSQL would otherwise cast 1.5 s to an integer
    name = engine.dialect.name
    if name == "postgresql":
        return cast(func.ceil(func.extract("epoch", func.clock_timestamp()) + seconds), BigInteger)
    if name in ("mysql", "mariadb"):
        return cast(func.ceil(func.unix_timestamp(func.now(6)) + seconds), Integer)
    return cast((func.julianday("now") - 2440587.5) * 86400.0 + seconds, Integer) + 1
