"""`qctl about`: what this installation would use — the config found, connections and stores with
their URLs (passwords hidden), versions, and whether each server answers.

Only reads: a SQLite file that does not exist yet is reported as such, never created; servers are
asked with short timeouts on connections of their own (no pool is kept).
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from qctl.__about__ import __version__
from qctl.config import BUILT_IN, Config, StoreConfig
from qctl.db.engines import missing_driver, normalise_url, redact

PROBE_SECONDS = 2
DISTRIBUTIONS = {"SQLAlchemy": "sqlalchemy", "redis-py": "redis", "psycopg": "psycopg", "PyMySQL": "pymysql"}
NO_SERVER = ("sync", "null", "memory")


@dataclass(frozen=True)
class Server:
    url: str
    """Password hidden."""
    reachable: bool
    detail: str
    """The server's kind and version when it answered, else why not."""


def describe(config: Config, probe: bool = True) -> dict[str, Any]:
    """Everything `qctl about --json` prints, as plain data."""
    found = None if config.source == BUILT_IN or config.directory is None else config.source
    return {
        "config": found or BUILT_IN,
        "config_directory": str(config.directory) if config.directory else None,
        "app": list(config.app),
        "key_set": config.key is not None,
        "default_connection": config.default,
        "connections": [
            {"name": name, "driver": c.driver, "url": redact(c.url) if c.url else None, "queue": c.queue,
             "default": name == config.default}
            for name, c in sorted(config.connections.items())
        ],
        "stores": {kind: _store(store) for kind, store in
                   (("failed", config.failed), ("batching", config.batching), ("cache", config.cache))},
        "versions": versions(),
        "servers": [asdict(server) for server in servers(config)] if probe else [],
    }


def _store(store: StoreConfig) -> dict[str, Any]:
    return {"driver": store.driver, "url": redact(store.url) if store.driver not in NO_SERVER else None,
            "table": store.table}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"qctl": __version__, "Python": platform.python_version()}
    for label, distribution in DISTRIBUTIONS.items():
        try:
            found[label] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[label] = None
    return found


def server_urls(config: Config) -> list[str]:
    """Every distinct URL a connection or store of this config talks to, in config order."""
    urls = [c.url for c in config.connections.values() if c.driver not in NO_SERVER and c.url]
    urls += [s.url for s in (config.failed, config.batching, config.cache) if s.driver not in NO_SERVER]
    return list(dict.fromkeys(urls))


def servers(config: Config) -> list[Server]:
    return [probe_server(url) for url in server_urls(config)]


def probe_server(url: str) -> Server:
    shown = redact(url)
    scheme = url.partition("://")[0]
    try:
        if scheme.startswith(("redis", "rediss", "unix")):
            return Server(shown, True, _redis_version(url))
        if scheme.startswith("sqlite"):
            return _sqlite(url, shown)
        return Server(shown, True, _sql_version(url))
    except ImportError as exc:
        return Server(shown, False, missing_driver(exc))
    except Exception as exc:  # whatever the server or driver says is the answer
        return Server(shown, False, _first_line(exc))


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_SECONDS, socket_timeout=PROBE_SECONDS)
    try:
        return f"Redis {client.info('server').get('redis_version', '?')}"
    finally:
        client.close()


def _sql_version(url: str) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(normalise_url(url))
    engine = create_engine(parsed, poolclass=NullPool, connect_args={"connect_timeout": PROBE_SECONDS})
    try:
        with engine.connect() as connection:
            dialect = connection.dialect
            version = ".".join(str(part) for part in (dialect.server_version_info or ()))
            name = "MariaDB" if getattr(dialect, "is_mariadb", False) else {
                "postgresql": "PostgreSQL", "mysql": "MySQL"}.get(dialect.name, dialect.name)
            return f"{name} {version}".strip()
    finally:
        engine.dispose()


def _sqlite(url: str, shown: str) -> Server:
    import sqlite3

    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if database in ("", ":memory:"):
        return Server(shown, True, f"SQLite {sqlite3.sqlite_version} in memory")
    path = Path(database)
    if not path.exists():
        return Server(shown, True, f"SQLite {sqlite3.sqlite_version}, {path} does not exist yet (created on first use)")
    return Server(shown, True, f"SQLite {sqlite3.sqlite_version}, {path} ({path.stat().st_size // 1024} KB)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
