"""Per-test configurations: unique table names and key prefixes, so tests (and parallel runs) never collide."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from qctl import config as config_module
from qctl.config import Config
from qctl.db.engines import get_engine
from tests.support.services import url_for

SQL_KINDS = ("sqlite", "postgresql", "mariadb")


@dataclass
class TestSetup:
    __test__ = False  # a fixture's value, not a test class (tests import it by name)

    kind: str
    directory: Path
    token: str
    toml: str

    @property
    def config_file(self) -> Path:
        return self.directory / "qctl.toml"

    def config(self) -> Config:
        return config_module.load(self.config_file)

    def table(self, base: str) -> str:
        return f"{base}_{self.token}"


def make_setup(kind: str, directory: Path, *, app: tuple[str, ...] = ("qctl_testjobs",), key: str | None = None,
               retry_after: int = 90, extra: str = "", redis_url: str | None = None,
               connection_options: str = "", batch_store: str = "database", only_connection: bool = False) -> TestSetup:
    """Write a qctl.toml for `kind` (sqlite, postgresql, mariadb, redis, memory) into `directory`.

    `redis_url` points a redis setup at a private server; `connection_options` are raw TOML
    lines added to the connection (`block_for = 0`); `batch_store` is the `[batching]` driver;
    `only_connection` writes no store section at all (the stores take their defaults: on a redis
    setup, the connection itself, under its prefix).
    """
    token = secrets.token_hex(4)
    db_kind = kind if kind in SQL_KINDS else "sqlite"
    db_url = url_for(db_kind, directory)
    lines = [
        'default = "main"',
        f"app = [{', '.join(repr(a) for a in app)}]".replace("'", '"'),
    ]
    if key:
        lines.append(f'key = "{key}"')
    lines += ["", "[connections.main]"]
    if kind == "redis":
        url = redis_url or url_for("redis", directory)
        lines += ['driver = "redis"', f'url = "{url}"', f'prefix = "qctl-test-{token}:"']
    elif kind == "memory":  # the queue and the cache in this process; the failed and batch stores on SQLite
        lines += ['driver = "memory"']
    else:
        lines += ['driver = "database"', f'url = "{db_url}"', f'table = "jobs_{token}"']
    lines += [f"retry_after = {retry_after}", *connection_options.splitlines()]
    if only_connection:
        return _written(kind, directory, token, "\n".join(lines) + "\n" + extra)
    lines += [
        "",
        "[failed]",
        f'url = "{db_url}"',
        f'table = "failed_jobs_{token}"',
        "",
        "[batching]",
        *(
            ['driver = "redis"', f'url = "{redis_url or url_for("redis", directory)}"',
             f'table = "qctl-test-{token}:job_batches"']
            if batch_store == "redis" else [f'url = "{db_url}"', f'table = "job_batches_{token}"']
        ),
        "",
        "[cache]",
    ]
    if kind == "memory":
        lines += ['driver = "memory"']
    elif kind == "redis":  # flags, counters and heartbeats in Redis too, under the test's key prefix
        lines += ['driver = "redis"', f'url = "{redis_url or url_for("redis", directory)}"', f'table = "qctl-test-{token}:cache"']
    else:
        lines += [f'url = "{db_url}"', f'table = "cache_{token}"']
    return _written(kind, directory, token, "\n".join(lines) + "\n" + extra)


def _written(kind: str, directory: Path, token: str, toml: str) -> TestSetup:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "qctl.toml").write_text(toml, encoding="utf-8")
    return TestSetup(kind, directory, token, toml)


def redis_prefix(setup: TestSetup) -> str:
    return f"qctl-test-{setup.token}:"


def drop_redis_keys(url: str, prefix: str) -> None:
    """Delete the keys under a test's prefix (the shared Redis is never flushed)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def drop_tables(setup: TestSetup) -> None:
    """Remove every table (and Redis key) the setup may have created (servers are shared)."""
    if setup.kind != "redis" and 'driver = "redis"' in setup.toml:  # a Redis batch store beside SQL
        drop_redis_keys(url_for("redis", setup.directory), redis_prefix(setup))
    if setup.kind == "redis":
        drop_redis_keys(url_for("redis", setup.directory), redis_prefix(setup))
        return
    if setup.kind not in ("postgresql", "mariadb"):
        return
    engine = get_engine(url_for(setup.kind, setup.directory))
    with engine.begin() as conn:
        names = [f"{base}_{setup.token}" for base in ("jobs", "failed_jobs", "job_batches", "cache")]
        for name in (*names, f"cache_{setup.token}_locks", f"job_batches_{setup.token}_jobs"):
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
