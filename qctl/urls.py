"""Whether a configured URL suits its driver, checked when the config is read (no SQLAlchemy, no redis-py).

A Redis URL on a database connection (or the reverse), an unknown scheme or a database index
that is not a number would otherwise surface later as a traceback from deep inside a client.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from qctl.errors import ConfigError

REDIS_SCHEMES = ("redis", "rediss", "unix")
DATABASE_KINDS = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_DIGITS = re.compile(r"[0-9]{1,9}")


def check_url(driver: str, url: str, where: str, redis_driver: bool = True) -> None:
    """The URL suits the driver (`redis` takes redis://, rediss:// or unix://; `database` an SQL URL): ConfigError."""
    problem = _redis_url_problem(url) if driver == "redis" else _database_url_problem(url, redis_driver)
    if problem:
        raise ConfigError(f"{where}url: {problem}")


def _redis_url_problem(url: str) -> str | None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme.split("+")[0] in DATABASE_KINDS:
        return f"{shown_url(url)} is a database URL, but the driver is redis; use a redis:// URL or driver = \"database\""
    if scheme not in REDIS_SCHEMES:
        return f"{shown_url(url)}: expected a redis://, rediss:// or unix:// URL for the redis driver"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        return f"{shown_url(url)}: {exc}"
    path_db = parts.path.strip("/") if scheme != "unix" else ""
    query_db = parse_qs(parts.query).get("db", [])
    for db in ([path_db] if path_db else []) + query_db:
        if not _DIGITS.fullmatch(db):
            return f"{shown_url(url)}: the database index must be a whole number like /0, got {db!r}"
    return None


def _database_url_problem(url: str, redis_driver: bool) -> str | None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        fix = 'use driver = "redis" or an SQL URL' if redis_driver else "this store has no redis driver; use an SQL URL"
        return f"{shown_url(url)} is a Redis URL, but the driver is database; {fix}"
    if scheme.split("+")[0] not in DATABASE_KINDS:
        return (f"{shown_url(url)}: expected a sqlite://, postgresql://, mysql:// or mariadb:// URL "
                "(with an optional +driver, as SQLAlchemy writes it)")
    return None


def shown_url(url: str) -> str:
    """The URL in quotes with any password hidden, for messages."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return repr(url.replace(f":{password}@", ":***@", 1) if password else url)
