"""The failed-job store contract, run against every store: memory, SQLite, PostgreSQL, MariaDB, Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from qctl.failed.base import FailedJobStore
from tests.support.failed_stores import KINDS, failed_store, make_older

if TYPE_CHECKING:
    from tests.support.configs import TestSetup

POISON = b"\xff\xfe{\x00not json at all\x80"
"""Payload bytes that are neither UTF-8 nor JSON, with a NUL: kept byte for byte all the same."""


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, setup_factory: Callable[..., TestSetup]) -> Iterator[FailedJobStore]:
    kind = str(request.param)
    setup = setup_factory(kind) if kind != "redis" else setup_factory("redis", only_connection=True)
    with failed_store(setup) as made:
        yield made


def test_one_record_per_uuid_and_the_first_one_stays(store: FailedJobStore) -> None:
    assert store.log("main", "default", b"{}", "ValueError: x", "u1") == "u1"
    store.log("main", "default", b"{}", "ValueError: again", "u1")  # a retried write after a crash
    store.log("main", "mail", b'{"n":2}', "KeyError: y", "u2")
    first = store.find("u1")
    assert first is not None and first.exception == "ValueError: x" and first.queue == "default"
    assert store.count() == 2 and [r.uuid for r in store.all()] == ["u2", "u1"]  # newest first
    assert store.find("nope") is None


def test_bytes_and_text_come_back_exactly(store: FailedJobStore) -> None:
    texts = {"poison": POISON, "base64-looking": b"base64:AAAA", "unicode": '{"name":"Zo\u00eb \u2603"}'.encode()}
    for uuid, payload in texts.items():
        store.log("main", "default", payload, "RuntimeError: caf\u00e9\x00 \ud800", uuid)
    for uuid, payload in texts.items():
        record = store.find(uuid)
        assert record is not None and record.payload == payload
        assert record.exception.startswith("RuntimeError: caf\u00e9") and "\x00" not in record.exception


def test_row_ids_grow_and_select_ranges(store: FailedJobStore) -> None:
    for n in range(4):
        store.log("main", "default", b"{}", "e", f"u{n}")
    ids = {r.uuid: r.id for r in store.all()}
    assert ids["u0"] < ids["u1"] < ids["u2"] < ids["u3"]
    chosen = store.find_by_row_ids(ids["u1"], ids["u2"])
    assert [r.uuid for r in chosen] == ["u1", "u2"]
    assert store.find_by_row_ids(ids["u3"] + 1, ids["u3"] + 100) == []


def test_forget_removes_one_record_once(store: FailedJobStore) -> None:
    store.log("main", "default", b"{}", "e", "u1")
    store.log("main", "default", b"{}", "e", "u2")
    assert store.forget("u1") is True and store.forget("u1") is False
    assert [r.uuid for r in store.all()] == ["u2"] and store.count() == 1
    store.log("main", "default", b"{}", "e", "u1")  # forgotten, so it may fail again
    assert store.count() == 2


def test_flush_with_hours_keeps_the_recent_ones_and_returns_marked_payloads(store: FailedJobStore) -> None:
    store.log("main", "default", b'{"lock":"unique-1"}', "e", "old-unique")
    store.log("main", "default", b"{}", "e", "old")
    store.log("main", "default", b'{"lock":"unique-2"}', "e", "recent-unique")
    make_older(store, ["old-unique", "old"], hours=5)
    deleted, held = store.flush_returning(2, b"unique")
    assert deleted == 2 and held == [b'{"lock":"unique-1"}']
    assert [r.uuid for r in store.all()] == ["recent-unique"]
    assert store.flush() == 1 and store.count() == 0 and store.all() == []


def test_prune_deletes_what_failed_before_the_cutoff(store: FailedJobStore) -> None:
    for uuid in ("a", "b", "c"):
        store.log("main", "default", b"{}", "e", uuid)
    make_older(store, ["a", "b"], hours=48)
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=24)  # naive UTC, as the CLI passes it
    assert store.prune(cutoff) == 2 and [r.uuid for r in store.all()] == ["c"]
    assert store.prune(cutoff) == 0


def test_failed_at_is_naive_utc_and_now(store: FailedJobStore) -> None:
    store.log("main", "default", b"{}", "e", "u1")
    record = store.find("u1")
    assert record is not None and record.failed_at.tzinfo is None
    assert abs(record.failed_at - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=30)


def test_counts_by_queue(store: FailedJobStore) -> None:
    for uuid, queue in (("a", "mail"), ("b", "mail"), ("c", "default")):
        store.log("main", queue, b"{}", "e", uuid)
    make_older(store, ["a"], hours=3)
    counts = store.count_by_queue()  # type: ignore[attr-defined]
    assert counts[("main", "mail")].total == 2 and counts[("main", "mail")].last_hour == 1
    assert counts[("main", "default")].total == 1 and counts[("main", "default")].last_minute == 1


def test_many_records_page_through(store: FailedJobStore) -> None:
    for n in range(1203):  # more than one page of the Redis store (500)
        store.log("main", "default", b"{}", "e", f"u{n}")
    assert store.count() == 1203 and len(store.all()) == 1203
    assert store.flush() == 1203 and store.count() == 0


def test_redis_keys_sit_under_the_connection_prefix_in_one_cluster_slot(setup_factory: Callable[..., TestSetup]) -> None:
    import redis
    from redis.crc import key_slot

    from qctl.failed.redis import RedisFailedJobStore

    setup = setup_factory("redis", only_connection=True)
    prefix = setup.config().connection().prefix
    with failed_store(setup) as store:
        assert isinstance(store, RedisFailedJobStore)
        store.log("main", "default", b"{}", "e", "u1")
        store.log("main", "default", b"{}", "e", "u2")
        client = redis.Redis.from_url(store.url)
        try:
            keys = sorted(client.scan_iter(match=f"{prefix}*"))
        finally:
            client.close()
    assert len(keys) == 5  # two records, the two indexes and the row-id counter
    assert all(key.startswith(f"{prefix}failed_jobs:{{failed}}:".encode()) for key in keys), keys
    assert len({key_slot(key) for key in keys}) == 1


@pytest.mark.slow
def test_the_redis_store_runs_on_a_redis_cluster(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cluster refuses a script or command whose keys span slots (CROSSSLOT): every one of the store's
    keys carries the same hash tag, and its client is a cluster client there."""
    from qctl.failed.redis import RedisFailedJobStore
    from tests.support.redis_server import PrivateRedis

    server = PrivateRedis(tmp_path / "cluster", cluster=True)
    server.start()
    store = RedisFailedJobStore(server.url, "app:failed_jobs")
    try:
        for n in range(3):
            store.log("main", "default", b'{"unique":%d}' % n, "e", f"u{n}")
        assert store._redis().__class__.__name__ == "RedisCluster"
        assert [r.uuid for r in store.all()] == ["u2", "u1", "u0"] and store.count() == 3
        assert store.forget("u0") is True and store.find("u0") is None
        make_older(store, ["u1"], hours=48)
        assert store.prune(dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)) == 1
        assert store.flush_returning(None, b"unique") == (1, [b'{"unique":2}'])
    finally:
        store.close()
        server.stop()
