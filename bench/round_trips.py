"""Round trips (and SQLite statements) the database driver spends per reserved-and-deleted job.

PostgreSQL and MariaDB: the driver talks through a small TCP proxy that counts
exchanges — a client write after the server last spoke starts a new round trip, so
pipelined messages count once. SQLite has no wire, so it counts the statements the
sqlite3 module runs (BEGIN and COMMIT included) through its trace callback.

Warm-up jobs run first (connections opened, statements prepared), then each of
`--jobs` jobs is reserved and deleted and the counts are split by operation; then
`--jobs` more go the way a busy worker takes them, each delete riding with the next
reserve (`pop_after`).

With `--batched`, also what the batch store adds per batched job (recording its success),
on each SQL database and, with `--only …,redis`, on Redis. With `--middleware`, what each job
middleware that talks to the cache store adds per job (RateLimited under a limit it never
reaches, WithoutOverlapping on a free key, ThrottlesExceptions around a job that succeeds), with that store on each database and on Redis.

    python bench/round_trips.py [--jobs 200] [--only sqlite,postgresql,mariadb,redis] [--batched] [--middleware]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

POSTGRES_URL = os.environ.get("QCTL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("QCTL_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("QCTL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WARM_UP = 5


class CountingProxy:
    """Forwards one local port to a server and counts request/response exchanges."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.round_trips = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            last = {"from": "server"}  # per connection: who spoke last
            threading.Thread(target=self._pipe, args=(client, server, "client", last), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, "server", last), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, side: str, last: dict[str, str]) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if side == "client" and last["from"] == "server":
                        self.round_trips += 1
                    last["from"] = side
                sink.sendall(data)
        except OSError:
            pass  # the other side closed: the finally below closes this one
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def count(self) -> int:
        with self._lock:
            return self.round_trips


class StatementCounter:
    def __init__(self) -> None:
        self.statements = 0

    def __call__(self, _sql: str) -> None:
        self.statements += 1

    def count(self) -> int:
        return self.statements


def through_proxy(url: str) -> tuple[str, CountingProxy]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    proxy = CountingProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    return parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy


def measure(kind: str, url: str, jobs: int) -> None:
    from sqlalchemy import event, text

    from qctl.config import ConnectionConfig
    from qctl.db.engines import get_engine
    from qctl.drivers.database import DatabaseDriver

    table = f"jobs_rt_{secrets.token_hex(4)}"
    counter: CountingProxy | StatementCounter
    if kind == "sqlite":
        counter = StatementCounter()
        event.listen(get_engine(url), "connect", lambda dbapi, _record: dbapi.set_trace_callback(counter))
    else:
        url, counter = through_proxy(url)
    driver = DatabaseDriver(ConnectionConfig("rt", "database", url, table=table))
    try:
        driver.bulk([(f'{{"n":{n}}}', "default", 0.0) for n in range(2 * jobs + WARM_UP + 1)])
        for _ in range(WARM_UP):
            job = driver.pop(["default"])
            assert job is not None and job.delete()
        reserve = delete = 0
        for _ in range(jobs):
            before = counter.count()
            job = driver.pop(["default"])
            middle = counter.count()
            assert job is not None and job.delete()
            reserve += middle - before
            delete += counter.count() - middle
        folded = 0
        held = driver.pop(["default"])  # a busy worker: each reserve also deletes the job before
        for _ in range(jobs):
            before = counter.count()
            held = driver.pop_after(held, ["default"])
            folded += counter.count() - before
            assert held is not None
        assert held.delete()
        before = counter.count()
        assert driver.pop(["default"]) is None
        empty = counter.count() - before
        unit = "statements" if kind == "sqlite" else "round trips"
        print(f"{kind:11} {unit:11} per job: reserve {reserve / jobs:.2f}, delete {delete / jobs:.2f}, "
              f"total {(reserve + delete) / jobs:.2f}; busy worker (delete with the next reserve) "
              f"{folded / jobs:.2f}; empty poll {empty}")
    finally:
        if kind != "sqlite":
            with get_engine(url).begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        driver.close()


def counted_store(kind: str, url: str, table: str, on_redis: Any, on_sql: Any) -> tuple[object, CountingProxy | StatementCounter, str]:
    """A store built by `on_redis(url, namespace)` or `on_sql(url, table)` that talks through a
    counter; returns it, the counter and the URL it uses (SQL: through the proxy)."""
    from sqlalchemy import event

    from qctl.db.engines import get_engine

    if kind == "redis":
        from redis.connection import parse_url

        proxy = CountingProxy(parse_url(url).get("host", "127.0.0.1"), int(parse_url(url).get("port", 6379)))
        return on_redis(f"redis://127.0.0.1:{proxy.port}/0", table), proxy, url
    counter: CountingProxy | StatementCounter
    if kind == "sqlite":
        counter = StatementCounter()
        event.listen(get_engine(url), "connect", lambda dbapi, _record: dbapi.set_trace_callback(counter))
    else:
        url, counter = through_proxy(url)
    return on_sql(url, table), counter, url


def drop_store(kind: str, url: str, table: str, suffixes: tuple[str, ...]) -> None:
    """Drop `table` and `table<suffix>` tables (PostgreSQL, MariaDB) or the `table*` keys (Redis)."""
    from sqlalchemy import text

    if kind in ("postgresql", "mariadb"):
        from qctl.db.engines import get_engine

        with get_engine(url).begin() as conn:
            for suffix in ("", *suffixes):
                conn.execute(text(f"DROP TABLE IF EXISTS {table}{suffix}"))
    elif kind == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{table}*"))
        if keys:
            client.delete(*keys)
        client.close()


def measure_batched(kind: str, url: str, jobs: int) -> None:
    """Round trips (statements on SQLite) the batch store adds per batched job: recording its success."""
    from qctl.bus.batch_database import DatabaseBatchStore
    from qctl.bus.batch_redis import RedisBatchStore
    from qctl.bus.batch_store import NewBatch

    table = f"batches_rt_{secrets.token_hex(4)}"
    store, counter, url = counted_store(kind, url, table, lambda u, t: RedisBatchStore(u, namespace=t), DatabaseBatchStore)
    members = [f"job-{n}" for n in range(2 * jobs + WARM_UP + 3)]
    try:
        store.create(NewBatch("rt", "round trips", {}))  # type: ignore[attr-defined]
        store.add_jobs("rt", members, fresh_batch=True)  # type: ignore[attr-defined]
        for uuid in members[:WARM_UP]:
            store.record_success("rt", uuid)  # type: ignore[attr-defined]
        before = counter.count()
        for uuid in members[WARM_UP:WARM_UP + jobs]:
            store.record_success("rt", uuid)  # type: ignore[attr-defined]
        unit = "statements" if kind == "sqlite" else "round trips"
        print(f"{kind:11} {unit:11} per batched job (recording its success): {(counter.count() - before) / jobs:.2f}")
        if kind == "postgresql":
            measure_riding(store, url, counter, members[WARM_UP + jobs:], table)
    finally:
        drop_store(kind, url, table, ("_jobs", "_queue"))
        store.close()  # type: ignore[attr-defined]


def measure_riding(store: Any, url: str, counter: CountingProxy | StatementCounter, members: list[str], table: str) -> None:
    """PostgreSQL, the queue on the batch store's database: a busy worker's round trips per batched job
    when each success rides ahead of the job's delete (`ack_guard`), against the same loop unbatched."""
    from qctl.config import ConnectionConfig
    from qctl.drivers.database import DatabaseDriver

    driver = DatabaseDriver(ConnectionConfig("rt", "database", url, table=f"{table}_queue"))
    jobs = len(members) - 2
    try:
        driver.bulk([(f'{{"n":{n}}}', "default", 0.0) for n in range(2 * len(members) + 1)])
        held = driver.pop(["default"])
        plain_before = counter.count()
        for _ in range(len(members)):
            held = driver.pop_after(held, ["default"])
        plain = counter.count() - plain_before
        riding = 0
        for index, uuid in enumerate(members[:jobs + 1]):
            assert held is not None
            held.guard = store.ack_guard(held, "rt", uuid)  # type: ignore[union-attr]
            assert held.guard is not None
            before = counter.count()
            following = driver.pop_after(held, ["default"])
            if index > 0:  # the first prepares the guard on the worker's connection
                riding += counter.count() - before
            assert not held.held, "the guard refused"  # type: ignore[union-attr]
            held = following
        print(f"{'postgresql':11} {'round trips':11} per batched job, a busy worker (success riding ahead of the "
              f"delete with the next reserve): {riding / jobs:.2f}; the same loop unbatched {plain / len(members):.2f}")
    finally:
        driver.close()


class BenchContext:
    """Just what the middleware ask of a running job's context: its id and the cache store."""

    def __init__(self, store: object) -> None:
        self.store = store
        self.job_id = ""

    def cache(self, name: str | None = None) -> object:
        return self.store


def measure_middleware(kind: str, url: str, jobs: int) -> None:
    """Round trips (statements on SQLite) each cache-backed middleware adds to one job."""
    from qctl import Job, Limit, RateLimiter
    from qctl.cache.database import DatabaseCacheStore
    from qctl.cache.redis import RedisCacheStore
    from qctl.middleware import RateLimited, ThrottlesExceptions, WithoutOverlapping

    table = f"cache_rt_{secrets.token_hex(4)}"
    store, counter, url = counted_store(kind, url, table, lambda u, t: RedisCacheStore(u, namespace=t), DatabaseCacheStore)

    class Probe(Job):
        def handle(self) -> None:
            return None

    RateLimiter.for_("round-trips", lambda job: Limit.per_second(10_000_000))
    context = BenchContext(store)
    job = Probe()
    job._qctl_ctx = context  # type: ignore[attr-defined]
    try:
        results = []
        for name, middleware in (("RateLimited", lambda n: RateLimited("round-trips")),
                                 ("WithoutOverlapping", lambda n: WithoutOverlapping(f"rt-{n}")),
                                 ("ThrottlesExceptions", lambda n: ThrottlesExceptions(10, 1))):
            for n in range(WARM_UP):
                context.job_id = f"warm-{name}-{n}"
                middleware(n).handle(job, lambda j: j.handle())
            before = counter.count()
            for n in range(jobs):
                context.job_id = f"job-{name}-{n}"
                middleware(n).handle(job, lambda j: j.handle())
            results.append(f"{name} {(counter.count() - before) / jobs:.2f}")
        unit = "statements" if kind == "sqlite" else "round trips"
        print(f"{kind:11} {unit:11} per job, added by middleware: " + ", ".join(results))
    finally:
        drop_store(kind, url, table, ("_locks",))
        store.close()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--only", default="sqlite,postgresql,mariadb")
    parser.add_argument("--batched", action="store_true", help="also count what recording a batched job adds")
    parser.add_argument("--middleware", action="store_true", help="also count what each cache-backed middleware adds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qctl-rt-") as directory:
        urls = {"sqlite": f"sqlite:///{directory}/rt.sqlite", "postgresql": POSTGRES_URL, "mariadb": MARIADB_URL,
                "redis": REDIS_URL}
        for kind in args.only.split(","):
            if kind != "redis":
                measure(kind, urls[kind], args.jobs)
            if args.batched:
                measure_batched(kind, urls[kind], args.jobs)
            if args.middleware:  # SQLite: a file of its own, so its connections are traced from the start
                measure_middleware(kind, urls[kind].replace("rt.sqlite", "mw.sqlite"), args.jobs)


if __name__ == "__main__":
    main()
