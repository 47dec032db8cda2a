"""The worker's own Redis connection: replies read in order, and the short poll before a read
that backs off when replies come late (a far or busy server) and comes back when they are quick."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
from redis import exceptions as rx

from qctl.config import ConnectionConfig
from qctl.drivers import redis_client
from qctl.drivers.redis import RedisDriver
from qctl.drivers.redis_client import (
    CAN_SPIN,
    CROWDED_SHARE,
    CROWDING_LOOK_EVERY,
    SPIN_PAUSE_CAP,
    RedisClient,
    Wire,
)
from tests.support.services import REDIS_URL, require

POLL = 0.005  # wide, so a quick reply lands inside it even on a loaded machine
LATE = "0.05"  # a BLPOP on an empty list answers after this many seconds: far past the window


@pytest.fixture
def wire() -> Iterator[Wire]:
    require("redis")
    client = RedisClient(REDIS_URL, None, busy_poll=POLL)
    found = client._wire()
    found.spin = POLL  # on a one-CPU machine too: the rule is what is tested here
    yield found
    client.close()


@pytest.fixture
def empty_key() -> str:
    return f"qctl-test-{secrets.token_hex(4)}:nothing"


def test_replies_come_back_in_order_and_errors_stay_in_their_place(wire: Wire) -> None:
    key = f"qctl-test-{secrets.token_hex(4)}:n"
    try:
        replies = wire.call_many([("INCR", key), ("HGET", key, "x"), ("INCRBY", key, "41"), ("GET", key)])
        assert replies[0] == 1 and replies[2] == 42 and replies[3] == b"42"
        assert isinstance(replies[1], rx.ResponseError)  # WRONGTYPE, as an object in its place
        assert wire.call("PING") == b"PONG"  # the connection is still in step after the error reply
    finally:
        wire.call("DEL", key)


def test_a_late_reply_pauses_the_poll_and_a_quick_one_brings_it_back(wire: Wire, empty_key: str) -> None:
    assert wire.call("PING") == b"PONG"
    assert (wire.spin_misses, wire.spin_pause) == (0, 0)
    assert wire.call("BLPOP", empty_key, LATE) is None
    assert (wire.spin_misses, wire.spin_pause) == (1, 2)  # the next two calls read without polling
    assert wire.call("BLPOP", empty_key, LATE) is None  # unpolled, so no second miss is counted
    assert (wire.spin_misses, wire.spin_pause) == (1, 1)
    assert wire.call("PING") == b"PONG"
    assert wire.spin_pause == 0
    # polled again; the first reply that comes inside the window clears the misses (on a busy
    # machine a PING can itself be late, pausing again: keep asking, the rule is the same)
    deadline = time.monotonic() + 10  # a loaded machine can make many PINGs in a row late
    while time.monotonic() < deadline:
        assert wire.call("PING") == b"PONG"
        if (wire.spin_misses, wire.spin_pause) == (0, 0):
            break
    assert (wire.spin_misses, wire.spin_pause) == (0, 0)


def test_the_pause_after_misses_in_a_row_is_capped(wire: Wire, empty_key: str) -> None:
    pauses = []
    for _ in range(SPIN_PAUSE_CAP.bit_length() + 2):
        wire.spin_pause = 0  # skip the calls that would go unpolled
        assert wire.call("BLPOP", empty_key, LATE) is None
        pauses.append(wire.spin_pause)
    assert pauses[:3] == [2, 4, 8]
    assert pauses[-1] == SPIN_PAUSE_CAP and max(pauses) == SPIN_PAUSE_CAP


@pytest.mark.parametrize("preempted, polls_after", [(CROWDING_LOOK_EVERY // CROWDED_SHARE + 1, False), (1, True)])
def test_a_thread_that_keeps_losing_its_cpu_stops_polling(
    wire: Wire, monkeypatch: pytest.MonkeyPatch, preempted: int, polls_after: bool
) -> None:
    assert wire.call("PING") == b"PONG"
    wire.polled_calls = CROWDING_LOOK_EVERY - 1  # the next polled call takes a look
    wire.spin_misses = wire.spin_pause = 0  # a late first PING on a busy machine would skip it
    seen = wire.preempted
    monkeypatch.setattr(redis_client, "preemptions", lambda: seen + preempted)
    assert wire.call("PING") == b"PONG"
    assert wire.polled_calls == 0 and wire.preempted == seen + preempted
    # polling on: the pause is 0, or the short one of a single late reply; off: the cap
    assert (wire.spin_pause == SPIN_PAUSE_CAP) is not polls_after


def test_busy_poll_us_0_turns_the_poll_off(empty_key: str) -> None:
    require("redis")
    client = RedisClient(REDIS_URL, None)
    try:
        quiet = Wire(client.client().connection_pool.make_connection(), 0.0)
        assert quiet.call("BLPOP", empty_key, LATE) is None
        assert (quiet.spin_misses, quiet.spin_pause) == (0, 0)
        quiet.close()
    finally:
        client.close()


@pytest.mark.parametrize("busy_poll_us", [0, 250])
def test_busy_poll_us_sets_the_window_of_the_drivers_connection(busy_poll_us: int) -> None:
    require("redis")
    driver = RedisDriver(ConnectionConfig("main", "redis", REDIS_URL, busy_poll_us=busy_poll_us))
    try:
        expected = busy_poll_us / 1e6 if CAN_SPIN else 0.0  # never on a machine with one CPU
        assert driver.redis._wire().spin == pytest.approx(expected)
        assert driver.size("default") >= 0  # and it talks
    finally:
        driver.close()
