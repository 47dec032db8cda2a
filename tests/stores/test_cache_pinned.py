"""The database cache store's pinned path: one connection per thread, one statement per lock or hit,
the database's clock, and a connection the server ended replaced at the next operation."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from qctl.cache import limits
from qctl.cache.base import CacheStore
from qctl.cache.database import DatabaseCacheStore
from qctl.clock import SYSTEM_CLOCK, Clock
from qctl.db.engines import get_engine
from qctl.errors import StoreUnavailableError
from tests.support.services import POSTGRES_URL, require

PINNED_KINDS = ["postgresql", "mariadb"]


def backend_id(store: DatabaseCacheStore) -> int:
    """The server's id for this thread's pinned connection (opened by the store's first operation)."""
    cursor = store._pinned.pins.cursor()
    cursor.execute("SELECT pg_backend_pid()" if store.engine.dialect.name == "postgresql" else "SELECT CONNECTION_ID()")
    return int(cursor.fetchone()[0])


def end_session(store: DatabaseCacheStore, session: int) -> None:
    """End a session from another connection, as a restarted server or an administrator would."""
    with get_engine(str(store.engine.url.render_as_string(hide_password=False))).connect() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": session})
        else:
            conn.execute(text(f"KILL {int(session)}"))
        conn.commit()


def on_database_clock(stores: Callable[[Clock], CacheStore]) -> DatabaseCacheStore:
    store = stores(SYSTEM_CLOCK)
    assert isinstance(store, DatabaseCacheStore)
    store.owner("warm-up")  # tables made, the thread's connection pinned
    return store


@pytest.mark.parametrize("kind", PINNED_KINDS)
def test_a_thread_keeps_one_connection_and_each_thread_has_its_own(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    first = backend_id(store)
    store.acquire("report", "worker-1", 60)
    store.hit("api", 5, 60)
    assert store.release("report", "worker-1") is True
    assert backend_id(store) == first
    seen: list[int] = []
    thread = threading.Thread(target=lambda: (store.owner("report"), seen.append(backend_id(store))))
    thread.start()
    thread.join()
    assert seen and seen[0] != first


@pytest.mark.parametrize("kind", PINNED_KINDS)
def test_more_threads_than_a_pool_holds_each_pin_a_connection_without_waiting(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    threads_count = 20  # the engines' pools hold 5 + 10 overflow
    pinned = threading.Barrier(threads_count, timeout=20)
    taken: list[bool] = []

    def take(n: int) -> None:
        taken.append(store.acquire(f"key-{n}", f"worker-{n}", 60))
        pinned.wait()  # every thread holds its connection at once

    started = time.monotonic()
    threads = [threading.Thread(target=take, args=(n,)) for n in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert taken == [True] * threads_count
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("kind", PINNED_KINDS)
def test_a_session_the_server_ended_is_replaced_at_the_next_operation(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    assert store.acquire("report", "worker-1", 60) is True
    before = backend_id(store)
    end_session(store, before)
    started = time.monotonic()
    assert store.acquire("report", "worker-2", 60) is False  # still fenced: worker-1 holds it
    assert store.release("report", "worker-1") is True
    assert store.hit("api", 1, 60).allowed and not store.hit("api", 1, 60).allowed
    assert time.monotonic() - started < 10
    assert backend_id(store) != before


@pytest.mark.parametrize("kind", PINNED_KINDS)
def test_a_lock_expires_on_the_database_clock(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    assert store.acquire("report", "worker-1", 1) is True
    assert store.acquire("report", "worker-2", 1) is False
    deadline = time.monotonic() + 5  # whole seconds, rounded up: free after one to two seconds
    while store.owner("report") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.owner("report") is None
    assert store.release("report", "worker-1") is False  # an expired lock is nobody's to release
    assert store.acquire("report", "worker-2", 60) is True


@pytest.mark.parametrize("kind", PINNED_KINDS)
def test_eight_threads_racing_to_make_a_limiter_row_count_exactly_the_limit(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    start = threading.Barrier(8)
    allowed: list[bool] = []

    def race() -> None:
        store.owner("warm-up")  # this thread's connection, before the race
        start.wait()
        allowed.append(store.hit("fresh", 3, 60).allowed)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(allowed) == [False] * 5 + [True] * 3
    assert store.hits("fresh", 60) == 3


@pytest.mark.parametrize("kind", ["postgresql"])
def test_postgresql_keeps_a_dense_array_that_python_reads(store: CacheStore) -> None:
    for _ in range(3):
        store.hit("api", 10, 60)
    stored = store.get(limits.LIMITER_PREFIX + "api")
    assert stored is not None and limits.DENSE.fullmatch(stored)
    assert sum(limits.loads(stored).values()) == 3
    assert store.hits("api", 60) == 3


@pytest.mark.parametrize("kind", PINNED_KINDS)
def test_close_ends_the_pinned_sessions(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    connection = store._pinned.pins.cursor().connection
    store.close()
    assert connection.closed if store.engine.dialect.name == "postgresql" else not connection.open
    assert store.owner("report") is None  # a later operation pins a new one


@pytest.mark.parametrize("kind", ["postgresql"])
def test_a_forked_child_leaves_its_parents_session_alone(stores: Callable[[Clock], CacheStore]) -> None:
    store = on_database_clock(stores)
    parent = backend_id(store)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its own connection, and a clean exit that closes nothing of the parent's
        try:
            store.acquire("child", "worker-c", 60)
            os.write(write, str(backend_id(store)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_session = int(os.read(read, 64) or b"0")
    os.close(read)
    os.waitpid(child, 0)
    assert child_session not in (0, parent)
    assert backend_id(store) == parent
    assert store.owner("child") == "worker-c"


@pytest.fixture
def walled_database() -> Iterator[tuple[DatabaseCacheStore, Callable[[], None]]]:
    """A store on a database of its own, and a way to end its sessions and refuse new ones."""
    require("postgresql")
    name = f"qctl_pinned_{secrets.token_hex(4)}"
    admin = get_engine(POSTGRES_URL, autocommit=True)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    store = DatabaseCacheStore(POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}")

    def wall_off() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})

    try:
        yield store, wall_off
    finally:
        store.close()
        store.engine.dispose()
        store.autocommit.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_a_store_that_stays_down_fails_each_operation_in_one_line(walled_database: tuple[DatabaseCacheStore, Callable[[], None]]) -> None:
    store, wall_off = walled_database
    assert store.acquire("report", "worker-1", 60) is True
    wall_off()
    for operation in (lambda: store.acquire("report", "worker-1", 60), lambda: store.release("report", "worker-1"),
                      lambda: store.hit("api", 5, 1.0), lambda: store.owner("report")):
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as caught:
            operation()
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert message.startswith("cache postgresql") and "cannot" in message and "\n" not in message
