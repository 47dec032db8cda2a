"""Redis Cluster: a private single-node cluster (all 16384 slots), which enforces CROSSSLOT like a big one."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from qctl.config import ConnectionConfig
from qctl.drivers.redis import OTHER_SLOTS_SECONDS, RedisDriver
from qctl.drivers.redis_keys import queue_keys, slot_of
from qctl.errors import DriverError
from tests.support.redis_server import PrivateRedis, join_cluster, move_slot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(Path(tmp_path_factory.mktemp("cluster")), cluster=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def driver(cluster: PrivateRedis) -> Iterator[RedisDriver]:
    config = ConnectionConfig("main", "redis", cluster.url, prefix=f"t{secrets.token_hex(3)}:", block_for=5, retry_after=1)
    made = RedisDriver(config)
    yield made
    made.close()


def payload(n: int) -> str:
    return json.dumps({"uuid": f"job-{n}", "n": n}, separators=(",", ":"))


def test_our_slot_rule_matches_cluster_keyslot(cluster: PrivateRedis) -> None:
    client = cluster.client()
    for queue in ("{default}", "default", "{emails}high", "a:{b}"):
        for key in queue_keys("app:", queue).all():
            assert slot_of(key) == client.execute_command("CLUSTER", "KEYSLOT", key)
    slots = {client.execute_command("CLUSTER", "KEYSLOT", key) for key in queue_keys("app:", "{default}").all()}
    assert len(slots) == 1


def test_the_driver_detects_the_cluster_and_works_on_it(driver: RedisDriver) -> None:
    driver.push(payload(1), "{default}")
    job = driver.pop(["{default}"])
    assert driver.redis.cluster is True
    assert isinstance(driver.redis.client(), redis.RedisCluster)
    assert job is not None and job.raw == payload(1).encode() and job.attempts == 1
    assert job.release(0) is True
    again = driver.pop(["{default}"])
    assert again is not None and again.attempts == 2 and again.delete() is True
    assert driver.size("{default}") == 0


def test_untagged_queue_is_refused_with_a_clear_error(driver: RedisDriver) -> None:
    with pytest.raises(DriverError, match=r"hash tag, e.g. '\{default\}'"):
        driver.push(payload(1), "default")


def test_multi_queue_pop_never_runs_a_cross_slot_script(driver: RedisDriver) -> None:
    """Each tagged queue is its own slot: one script per slot, the finished job's delete apart."""
    queues = ["{high}", "{low}", "{default}"]
    assert len({queue_keys(driver.prefix, q).slot for q in queues}) == 3
    driver.bulk([(payload(1), "{low}", 0), (payload(2), "{default}", 0), (payload(3), "{high}", 1)])
    first = driver.pop(queues)
    assert first is not None and first.queue == "{low}"
    second = driver.pop_after(first, queues)
    assert second is not None and second.queue == "{default}"
    assert driver.size("{low}") == 0  # the finished job was deleted
    assert driver.wait_for_job(queues) is True  # woken by the delayed push or its due time
    third = driver.pop_after(second, queues) or driver.pop(queues)
    while third is None:
        driver.wait_for_job(queues)
        third = driver.pop(queues)
    assert third.queue == "{high}" and third.delete()
    assert sum(driver.size(q) for q in queues) == 0


def test_expired_lease_is_reclaimed_on_the_cluster(driver: RedisDriver) -> None:
    driver.push(payload(1), "{default}")
    stale = driver.pop(["{default}"])
    assert stale is not None
    driver.wait_for_job(["{default}"])  # blocks until the lease (retry_after = 1) expires
    fresh = driver.pop(["{default}"])
    while fresh is None:
        driver.wait_for_job(["{default}"])
        fresh = driver.pop(["{default}"])
    assert fresh.reclaimed and fresh.attempts == 2
    assert stale.delete() is False and fresh.delete() is True


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[PrivateRedis]]:
    base = Path(tmp_path_factory.mktemp("two-nodes"))
    nodes = [PrivateRedis(base / name, cluster=True, slots=None) for name in ("a", "b")]
    try:
        for node in nodes:
            node.start()
        join_cluster(nodes, [(0, 8191), (8192, 16383)])
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_pushes_follow_a_queue_whose_slot_moved_to_another_node(two_nodes: list[PrivateRedis]) -> None:
    """A resharding moves the queue's slot after the driver learned the map: the bulk pipeline
    reaches the old owner, which answers MOVED and runs nothing; those pushes go to the new one.
    Single calls (push, the worker's reserve) follow MOVED inside redis-py's cluster client."""
    queue = "{default}"
    driver = RedisDriver(ConnectionConfig("main", "redis", two_nodes[0].url, prefix=f"t{secrets.token_hex(3)}:"))
    slot = queue_keys(driver.prefix, queue).slot
    owner, other = two_nodes if slot <= 8191 else two_nodes[::-1]
    try:
        assert driver.size(queue) == 0  # connected: the slot map is cached
        move_slot(slot, owner, other)
        driver.bulk([(payload(n), queue, 0) for n in range(3)])
        driver.push(payload(3), queue)
        ready = other.client().lrange(f"{driver.prefix}queues:{queue}", 0, -1)
        assert ready == [payload(n).encode() for n in range(4)]  # all on the new owner, in order
        assert owner.client().dbsize() == 0
        job = driver.pop([queue])
        assert job is not None and job.raw == payload(0).encode() and job.delete()
        move_slot(slot, other, owner)  # and back, keys and all: now the worker's reserve meets MOVED
        job = driver.pop([queue])
        assert job is not None and job.raw == payload(1).encode() and job.attempts == 1 and job.delete()
        assert driver.size(queue) == 2 and other.client().dbsize() == 0
    finally:
        driver.close()


def test_a_worker_across_slots_notices_a_job_on_another_slot_within_a_second(cluster: PrivateRedis) -> None:
    """BLPOP cannot span slots: the wait on the first slot's lists is cut to OTHER_SLOTS_SECONDS."""
    prefix = f"t{secrets.token_hex(3)}:"
    driver = RedisDriver(ConnectionConfig("main", "redis", cluster.url, prefix=prefix, block_for=30))
    pusher = RedisDriver(ConnectionConfig("main", "redis", cluster.url, prefix=prefix))
    queues = ["{high}", "{low}"]
    try:
        assert driver.pop(queues) is None
        threading.Timer(0.2, lambda: pusher.push(payload(1), "{low}")).start()
        started = time.monotonic()
        job = None
        while job is None and time.monotonic() - started < 10:
            assert driver.wait_for_job(queues) is True
            job = driver.pop(queues)
        assert job is not None and job.queue == "{low}" and job.delete()
        assert time.monotonic() - started < OTHER_SLOTS_SECONDS + 3  # not block_for's 30 s
    finally:
        driver.close()
        pusher.close()


def test_delete_and_push_across_slots_pushes_then_deletes(driver: RedisDriver) -> None:
    """The next links live in other slots: no one script can hold them all, so push, then delete."""
    driver.push(payload(1), "{default}")
    job = driver.pop(["{default}"])
    assert job is not None
    pushed = [(payload(2), "{other}", 0.0), (payload(3), "{default}", 0.0), (payload(4), "{third}", 60.0)]
    assert job.delete_and_push(pushed) is True
    assert [driver.size(q) for q in ("{default}", "{other}", "{third}")] == [1, 1, 1]
    assert job.delete_and_push([(payload(5), "{other}", 0)]) is False  # already deleted: nothing pushed
    assert driver.size("{other}") == 1
    nxt = driver.pop(["{other}"])
    assert nxt is not None and nxt.raw == payload(2).encode()
    assert nxt.delete_and_push([(payload(6), "{other}", 0)]) is True  # one slot: one script
    assert driver.size("{other}") == 1
    assert driver.clear("{default}") == 1 and driver.clear("{other}") == 1 and driver.clear("{third}") == 1
