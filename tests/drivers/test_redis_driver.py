"""What only the Redis driver promises: Laravel's key shapes, bytes moved unchanged, attempts kept
outside the payload, wake-ups, pipelined bulk pushes, NOSCRIPT recovery and cluster hash tags."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from qctl.config import ConnectionConfig
from qctl.drivers.redis import RedisDriver
from qctl.drivers.redis_bulk import BULK_CHUNK, BULK_CHUNK_CHARACTERS, bulk_chunks
from qctl.drivers.redis_client import Wire
from qctl.drivers.redis_keys import queue_keys, slot_of
from qctl.errors import DriverError
from tests.support.configs import drop_redis_keys
from tests.support.redis_server import PrivateRedis
from tests.support.services import REDIS_URL, require

DriverFactory = Callable[..., RedisDriver]


@pytest.fixture
def make_driver() -> Iterator[DriverFactory]:
    made: list[RedisDriver] = []

    def factory(url: str = REDIS_URL, **options: object) -> RedisDriver:
        if url == REDIS_URL:
            require("redis")
        config = ConnectionConfig("main", "redis", url, prefix=f"qctl-test-{secrets.token_hex(4)}:", **options)  # type: ignore[arg-type]
        driver = RedisDriver(config)
        made.append(driver)
        return driver

    yield factory
    for driver in made:
        driver.close()
        with contextlib.suppress(redis.RedisError):  # a private server the test already stopped
            drop_redis_keys(driver.redis.url, driver.prefix)


def raw(driver: RedisDriver) -> redis.Redis:
    return redis.Redis.from_url(driver.redis.url)


def payload(n: int) -> str:
    return json.dumps({"uuid": f"job-{n}", "n": n, "attempts": 0}, separators=(",", ":"))


def test_keys_follow_laravel_shapes_under_the_prefix(make_driver: DriverFactory) -> None:
    driver = make_driver()
    driver.push(payload(1), "default")
    driver.push(payload(2), "default", delay=60)
    driver.push(payload(3), "default")
    job = driver.pop(["default"])
    assert job is not None
    client, base = raw(driver), f"{driver.prefix}queues:default"
    assert client.lrange(base, 0, -1) == [payload(3).encode()]
    assert client.type(f"{base}:notify") == b"list"
    assert client.type(f"{base}:delayed") == b"zset" and client.type(f"{base}:reserved") == b"zset"
    assert client.type(f"{base}:attempts") == b"hash"
    [reserved] = client.zrange(f"{base}:reserved", 0, -1)
    assert reserved == f"{job.token}:{payload(1)}".encode()  # the payload, unchanged, behind the token
    assert client.hvals(f"{base}:attempts") == [b"1"]


def test_attempts_are_never_written_into_the_payload(make_driver: DriverFactory) -> None:
    driver = make_driver()
    driver.push(payload(1), "default")
    for attempt in (1, 2, 3):
        job = driver.pop(["default"])
        assert job is not None and job.attempts == attempt
        assert json.loads(job.raw)["attempts"] == 0 and job.raw == payload(1).encode()
        assert job.release(0)


def test_garbage_pushed_raw_is_handed_out_byte_exact(make_driver: DriverFactory) -> None:
    driver = make_driver()
    garbage = [b"\x00\xff", b"{", b"[]", b'{"uuid":"x"}', b"0123456789abcdef:looks-like-a-token"]
    raw(driver).rpush(f"{driver.prefix}queues:default", *garbage)
    popped = [driver.pop(["default"]) for _ in garbage]
    assert [job.raw for job in popped if job is not None] == garbage
    assert all(job is not None and job.delete() for job in popped)
    assert driver.size("default") == 0


def test_identical_payloads_stay_two_jobs(make_driver: DriverFactory) -> None:
    """Tokens keep equal bytes apart in the sorted sets (a plain ZADD would merge them into one)."""
    driver = make_driver()
    driver.bulk([(payload(1), "default", 30), (payload(1), "default", 30), (payload(1), "default", 0)])
    driver.push(payload(1), "default")
    assert driver.size("default") == 4
    first, second = driver.pop(["default"]), driver.pop(["default"])
    assert first is not None and second is not None and driver.size("default") == 4
    assert first.delete() and second.delete() and driver.size("default") == 2


def test_clear_removes_every_key_of_the_queue(make_driver: DriverFactory) -> None:
    driver = make_driver()
    driver.push(payload(1), "default")
    driver.push(payload(2), "default", delay=30)
    driver.push(payload(3), "default")
    assert driver.pop(["default"]) is not None
    assert driver.clear("default") == 3
    assert raw(driver).keys(f"{driver.prefix}*") == []


def test_bulk_sends_one_transaction_per_chunk(make_driver: DriverFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    driver = make_driver()
    driver.bulk([(payload(0), "warm", 0)])  # connect and load the script first, so only the pushes are counted
    writes: list[list[str]] = []
    original = Wire.call_many
    monkeypatch.setattr(Wire, "call_many", lambda self, commands: writes.append([c[0] for c in commands]) or original(self, commands))
    count = BULK_CHUNK * 2 + 7
    driver.bulk([(payload(n), "default" if n % 4 else "other", 0 if n % 3 else 5) for n in range(count)])
    assert len(writes) == 3 and all(write[0] == "MULTI" and write[-1] == "EXEC" for write in writes)
    assert [write.count("EVALSHA") for write in writes] == [1, 1, 1]  # the delayed jobs of each chunk
    monkeypatch.undo()
    assert driver.size("default") + driver.size("other") == count


def test_bulk_keeps_each_queues_order_across_chunks(make_driver: DriverFactory) -> None:
    driver = make_driver()
    count = BULK_CHUNK + 3
    driver.bulk([(payload(n), "odd" if n % 2 else "even", 0) for n in range(count)])
    for queue, first in (("even", 0), ("odd", 1)):
        ready = raw(driver).lrange(f"{driver.prefix}queues:{queue}", 0, -1)
        assert ready == [payload(n).encode() for n in range(first, count, 2)]
        assert raw(driver).llen(f"{driver.prefix}queues:{queue}:notify") == len(ready)  # a wake-up each


@pytest.mark.parametrize("broken", ["queues:broken", "queues:broken:delayed", "queues:broken:notify"])
def test_a_queue_key_of_another_type_fails_the_bulk_push_with_the_servers_reason(make_driver: DriverFactory, broken: str) -> None:
    driver = make_driver()
    raw(driver).set(f"{driver.prefix}{broken}", "not a queue")
    items = [(payload(1), "default", 0), (payload(2), "default", 5), (payload(3), "broken", 0), (payload(4), "broken", 5)]
    with pytest.raises(DriverError, match="WRONGTYPE"):
        driver.bulk(items)
    assert raw(driver).get(f"{driver.prefix}{broken}") == b"not a queue"


def test_the_bulk_script_checks_its_keys_before_it_writes(make_driver: DriverFactory) -> None:
    """The delayed jobs (and on a cluster every job) go through `bulk.lua`: a key of the wrong type
    fails the call before it writes anything, the jobs of other queues included."""
    driver = make_driver()
    raw(driver).set(f"{driver.prefix}queues:broken:notify", "not a queue")
    with pytest.raises(DriverError, match="WRONGTYPE"):
        driver.bulk([(payload(1), "default", 5), (payload(2), "broken", 5)])
    assert driver.size("default") == 0 and raw(driver).keys(f"{driver.prefix}*") == [f"{driver.prefix}queues:broken:notify".encode()]


def test_bulk_chunks_end_at_the_count_or_the_size() -> None:
    small = [(payload(n), "default", 0.0) for n in range(BULK_CHUNK * 2 + 1)]
    assert [len(chunk) for chunk in bulk_chunks(small)] == [BULK_CHUNK, BULK_CHUNK, 1]
    big = "x" * (BULK_CHUNK_CHARACTERS // 2 + 1)
    items = [(big, "default", 0.0), ("a", "default", 0.0), (big, "default", 0.0), (big * 3, "default", 0.0)]
    assert [[len(p) for p, _, _ in chunk] for chunk in bulk_chunks(items)] == [[len(big), 1], [len(big)], [len(big) * 3]]


def push_from_elsewhere(make_driver: DriverFactory, driver: RedisDriver, queue: str, after: float) -> None:
    """Another client pushes job 1 onto `queue` of `driver`'s keys `after` seconds from now."""
    pusher = make_driver()
    pusher.prefix = driver.prefix
    threading.Timer(after, lambda: pusher.push(payload(1), queue)).start()


def test_wait_for_job_polls_when_block_for_is_unset(make_driver: DriverFactory) -> None:
    assert make_driver(block_for=None).wait_for_job(["default"]) is False


def test_wait_for_job_wakes_when_a_job_is_pushed(make_driver: DriverFactory) -> None:
    driver = make_driver(block_for=60)
    assert driver.pop(["a", "b"]) is None
    push_from_elsewhere(make_driver, driver, "b", after=0.5)
    started = time.monotonic()
    assert driver.wait_for_job(["a", "b"]) is True
    assert time.monotonic() - started < 30  # woken by the token, not by the 60 s timeout
    job = driver.pop(["a", "b"])
    assert job is not None and job.queue == "b"


def test_wait_for_job_blocks_no_longer_than_the_next_delayed_job(make_driver: DriverFactory) -> None:
    driver = make_driver(block_for=0)  # 0 = forever, unless something falls due
    driver.push(payload(1), "default", delay=1)
    raw(driver).delete(f"{driver.prefix}queues:default:notify")  # no wake-up token: only the due time helps
    assert driver.pop(["default"]) is None
    assert driver.wait_for_job(["default"]) is True
    assert driver.pop(["default"]) is not None


def test_wait_and_pop_reserves_the_job_that_woke_it(make_driver: DriverFactory) -> None:
    driver = make_driver(block_for=60)
    assert driver.pop(["a", "b"]) is None
    push_from_elsewhere(make_driver, driver, "b", after=0.5)
    started = time.monotonic()
    waited, job = driver.wait_and_pop(["a", "b"])
    assert time.monotonic() - started < 30  # woken by the token, not by the 60 s timeout
    assert waited and job is not None and job.queue == "b" and job.raw == payload(1).encode() and job.attempts == 1
    assert job.delete() is True  # a fenced reservation like any other
    assert driver.size("b") == 0


def test_wait_and_pop_times_out_empty_handed(make_driver: DriverFactory) -> None:
    driver = make_driver(block_for=1)
    assert driver.wait_and_pop(["default"]) == (True, None)
    assert make_driver(block_for=None).wait_and_pop(["default"]) == (False, None)


def test_wait_and_pop_reloads_a_flushed_script(make_driver: DriverFactory) -> None:
    driver = make_driver(block_for=1)
    driver.push(payload(1), "default")
    raw(driver).script_flush()
    waited, job = driver.wait_and_pop(["default"])  # the token is there: BLPOP returns at once
    assert waited and job is not None and job.raw == payload(1).encode()


def test_wake_up_tokens_do_not_pile_up_while_workers_are_busy(make_driver: DriverFactory) -> None:
    driver = make_driver(block_for=1)
    notify = f"{driver.prefix}queues:default:notify"
    for n in range(50):
        driver.push(payload(n), "default")
    taken = 0
    while (job := driver.pop(["default"])) is not None:
        taken += 1
        assert raw(driver).llen(notify) <= raw(driver).llen(f"{driver.prefix}queues:default")
        job.delete()
    assert taken == 50 and raw(driver).llen(notify) == 0


def test_hash_tagged_queue_keeps_every_key_in_one_slot() -> None:
    tagged = queue_keys("app:", "{default}")
    assert len({slot_of(key) for key in tagged.all()}) == 1
    plain = queue_keys("app:", "default")
    assert len({slot_of(key) for key in plain.all()}) > 1  # why the tag matters


def test_scripts_are_reloaded_after_a_restart(make_driver: DriverFactory, tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        driver = make_driver(server.url)
        driver.push(payload(1), "default")
        server.client().script_flush()
        driver.bulk([(payload(2), "default", 0), (payload(3), "default", 1)])
        server.client().script_flush()
        job = driver.pop(["default"])
        assert job is not None and job.raw == payload(1).encode()
        server.stop()
        with pytest.raises(DriverError, match=f"cannot reach Redis at 127.0.0.1:{server.port}"):
            driver.pop(["default"])
        server.start()  # AOF brings the data back, the script cache starts empty
        assert job.delete() is True
        assert driver.size("default") == 2
    finally:
        server.stop()
