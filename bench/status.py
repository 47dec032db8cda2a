"""How long `qctl status` takes on a big queue: 1,000,000 jobs in a PostgreSQL (or MariaDB, SQLite)
table and in a Redis queue.

Each target is filled once (SQL: one INSERT … SELECT; Redis: pipelined RPUSH/ZADD) with
mostly ready jobs, some delayed and some reserved, then timed three ways:

- sizes: the driver's `sizes(queue)` in this process (what status reads per queue);
- gather: the whole status (`qctl.monitoring.status.gather`: sizes, DISTINCT queues,
  failed counts, heartbeats, batches) in this process;
- cli: `qctl status --json` as a subprocess, wall time, with `cli empty` the same command
  on an empty queue (Python start-up and imports) beside it.

SQL targets are timed after ANALYZE and again after VACUUM (a long-running table's
visibility map is mostly set, so index-only scans skip the heap), and without the
(queue, reserved_at, available_at) index, to show what it buys. Tables and keys get random
names and are dropped afterwards.

    python bench/status.py [--jobs 1000000] [--rounds 5] [--only postgresql,redis,mariadb,sqlite]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from qctl import config as config_module
from qctl.db.engines import get_engine
from qctl.monitoring.status import gather
from qctl.runtime import Runtime

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("QCTL_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("QCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PAYLOAD = '{"uuid":"00000000-0000-4000-8000-000000000000","job":"bench:Noop","data":{},"pushedAt":"%d.0"}'


def median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def write_config(directory: Path, kind: str, token: str) -> None:
    db = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}.get(kind, f"sqlite:///{directory}/bench.sqlite")
    if kind == "redis":
        connection = f'driver = "redis"\nurl = "{REDIS_URL}"\nprefix = "qctl-bench-{token}:"'
    else:
        connection = f'driver = "database"\nurl = "{db}"\ntable = "jobs_{token}"'
    (directory / "qctl.toml").write_text(
        f'default = "main"\napp = []\n\n[connections.main]\n{connection}\n\n'
        f'[failed]\nurl = "sqlite:///{directory}/stores.sqlite"\n[batching]\nurl = "sqlite:///{directory}/stores.sqlite"\n'
        f'[cache]\nurl = "sqlite:///{directory}/stores.sqlite"\n'
    )


def fill_sql(runtime: Runtime, jobs: int) -> None:
    driver = runtime.connections.get()
    driver.push(PAYLOAD % time.time(), "default")  # creates the table and its indexes
    engine, table = driver.engine, driver.table.name  # type: ignore[attr-defined]
    now = int(time.time())
    delayed, reserved = jobs // 20, 1000
    if engine.dialect.name == "postgresql":
        series = "FROM generate_series(1, :n) AS s(i)"
    else:
        series = "FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s) AS s"
    statement = text(
        f"INSERT INTO {table} (queue, payload, attempts, reserved_at, available_at, created_at) "
        f"SELECT CASE WHEN i % 10 = 0 THEN 'mail' ELSE 'default' END, :p, "
        f"CASE WHEN i <= :r THEN 1 ELSE 0 END, CASE WHEN i <= :r THEN :now ELSE NULL END, "
        f"CASE WHEN i > :n - :d THEN :now + 3600 ELSE :now - 60 END, :now {series}"
    )
    with engine.begin() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            mariadb = getattr(engine.dialect, "is_mariadb", False)
            variable = "max_recursive_iterations" if mariadb else "cte_max_recursion_depth"
            conn.execute(text(f"SET SESSION {variable} = 10000000"))
        conn.execute(statement, {"n": jobs - 1, "p": PAYLOAD % now, "r": reserved, "d": delayed, "now": now})
    analyze(engine, table, vacuum=False)


def analyze(engine: object, table: str, vacuum: bool) -> None:
    name = engine.dialect.name  # type: ignore[attr-defined]
    if name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"{'VACUUM ' if vacuum else ''}ANALYZE {table}"))
    elif name in ("mysql", "mariadb"):
        with engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f"ANALYZE TABLE {table}"))
    else:
        with engine.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("ANALYZE"))


def fill_redis(runtime: Runtime, jobs: int, token: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    base = f"qctl-bench-{token}:queues:default"
    payload = PAYLOAD % time.time()
    delayed, reserved = jobs // 20, 1000
    pipe = client.pipeline(transaction=False)
    for start in range(0, jobs - delayed - reserved, 10_000):
        pipe.rpush(base, *([payload] * min(10_000, jobs - delayed - reserved - start)))
    later = time.time() + 3600
    for n in range(delayed):
        pipe.zadd(f"{base}:delayed", {f"{n:016x}:{payload}": later})
        if n % 10_000 == 0:
            pipe.execute()
    pipe.zadd(f"{base}:reserved", {f"{n:016x}:{payload}": later for n in range(reserved)})
    pipe.execute()
    client.close()


def cli_ms(directory: Path, rounds: int) -> float:
    command = [sys.executable, "-m", "qctl", "status", "--json"]
    return median_ms(lambda: subprocess.run(command, cwd=directory, check=True, capture_output=True), rounds)


def time_target(kind: str, jobs: int, rounds: int) -> list[tuple[str, float]]:
    token = secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_config(directory, kind, token)
        empty_cli = cli_ms(directory, rounds)
        runtime = Runtime(config_module.load(directory / "qctl.toml"))
        driver = runtime.connections.get()
        try:
            (fill_redis(runtime, jobs, token) if kind == "redis" else fill_sql(runtime, jobs))
            sizes = driver.sizes("default")  # type: ignore[attr-defined]
            print(f"  {kind}: {sizes}", file=sys.stderr)
            figures = measure(runtime, directory, rounds, empty_cli, "")
            if kind != "redis":
                engine, table = driver.engine, driver.table.name  # type: ignore[attr-defined]
                if engine.dialect.name == "postgresql":
                    analyze(engine, table, vacuum=True)
                    figures += measure(runtime, directory, rounds, empty_cli, " (after VACUUM)")
                with engine.begin() as conn:
                    suffix = f" ON {table}" if engine.dialect.name in ("mysql", "mariadb") else ""
                    conn.execute(text(f"DROP INDEX {table}_queue_state_index{suffix}"))
                figures.append(("sizes without the state index", median_ms(lambda: driver.sizes("default"), rounds)))  # type: ignore[attr-defined]
            return figures
        finally:
            drop(kind, driver, token)
            runtime.close()


def measure(runtime: Runtime, directory: Path, rounds: int, empty_cli: float, label: str) -> list[tuple[str, float]]:
    driver = runtime.connections.get()
    return [
        (f"sizes{label}", median_ms(lambda: driver.sizes("default"), rounds)),  # type: ignore[attr-defined]
        (f"gather{label}", median_ms(lambda: gather(runtime), rounds)),
        (f"cli{label}", cli_ms(directory, rounds)),
        ("cli empty", empty_cli),
    ]


def drop(kind: str, driver: object, token: str) -> None:
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"qctl-bench-{token}:*"))
        if keys:
            client.delete(*keys)
        client.close()
        return
    with get_engine(str(driver.engine.url)).begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f"DROP TABLE IF EXISTS {driver.table.name}"))  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="postgresql,redis")
    args = parser.parse_args()
    print(f"{'target':<12} {'measure':<34} {'median ms':>10}")
    for kind in args.only.split(","):
        for label, ms in time_target(kind, args.jobs, args.rounds):
            print(f"{kind:<12} {label:<34} {ms:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
