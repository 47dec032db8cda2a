"""Poison pills, fuzzed: a few hundred mutated payloads pushed straight into each store, then a good
job; one real worker must settle every one of them and keep going (issue: hardening §1).

Each payload is a real job's envelope with one thing changed (a field's type swapped, a number at
±inf/NaN/2**64, a string with NUL, a lone surrogate or 10,000 characters, deep nesting, an
undecodable typed value), or not JSON at all. Whatever was changed, the payload must end either
run once (the ledger) or in the failed store once (by its exact bytes) — never crash the worker,
never be left reserved, never be recorded twice.
"""

from __future__ import annotations

import json
import random
import uuid as uuid_module
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import read_ledger, run_qctl
from tests.support.workers import queue_size

pytestmark = pytest.mark.chaos

KINDS = ["sqlite", "postgresql", "mariadb", "redis"]
SEED = 20261202

LONG = "x" * 10_000
DEEP = "DEEP"  # replaced after json.dumps by 5,000 nested lists: deeper than any decoder may recurse
BAD_VALUES: list[Any] = [
    None, True, -1, 2**64, -(2**64), float("inf"), float("-inf"), float("nan"), "", "\x00", "\ud800",
    LONG, [], {}, [1, "a"], {"k": "v"}, DEEP, "inf", "1e400", "-1", "2,inf", "a\x1b[31m\nforged line",
]
TYPED_GARBAGE: list[Any] = [
    {"__qctl__": "timedelta", "v": [10**20, 0, 0]},
    {"__qctl__": "datetime", "v": "not a date"},
    {"__qctl__": "datetime", "v": 12},
    {"__qctl__": "decimal", "v": "1e999999999"},
    {"__qctl__": "enum", "v": {"cls": "os:system", "v": 1}},
    {"__qctl__": "enum", "v": {"cls": "qctl_testjobs:Colour", "v": "\ud800"}},
    {"__qctl__": "model", "v": {"cls": "qctl_testjobs.transactional:Order", "key": ["x"]}},
    {"__qctl__": "model", "v": {"cls": "qctl_testjobs.transactional:Order", "key": []}},
    {"__qctl__": "bytes", "v": "%%%"},
    {"__qctl__": "tuple", "v": DEEP},
    {"__qctl__": "nope", "v": 1},
    {"__qctl__": "float", "v": "1e400"},
]
FIELDS = ["uuid", "displayName", "job", "maxTries", "maxExceptions", "failOnTimeout", "backoff", "timeout",
          "retryUntil", "pushedAt", "data", "data.commandName", "data.command", "data.command.n",
          "data.command.ledger", "data.chained", "data.chainCatchCallbacks", "data.batchId", "data.uniqueLock"]


def base_payload(n: int, ledger: Path, fails: bool) -> dict[str, Any]:
    cls = "FailsAtOnce" if fails else "Runs"
    return {
        "uuid": str(uuid_module.uuid4()), "displayName": f"qctl_testjobs.poison.{cls}",
        "job": "qctl.CallQueuedHandler@call", "maxTries": 1, "maxExceptions": None, "failOnTimeout": False,
        "backoff": None, "timeout": None, "retryUntil": None,
        "data": {"commandName": f"qctl_testjobs.poison:{cls}", "command": {"n": n, "ledger": str(ledger)}},
        "attempts": 0, "pushedAt": "0",
    }


def mutated(rng: random.Random, n: int, ledger: Path) -> str:
    body = base_payload(n, ledger, fails=rng.random() < 0.5)
    path = rng.choice(FIELDS).split(".")
    value = rng.choice(TYPED_GARBAGE if path[-1] == "n" and rng.random() < 0.6 else BAD_VALUES)
    if path[-1] == "ledger" and isinstance(value, str):
        value = [value]  # a string is a path the job would note its run in, out of the test's sight
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    text = json.dumps(body)  # inf/nan become Infinity/NaN, which Python's json reads back
    return text.replace('"DEEP"', "[" * 5000 + "]" * 5000)


def not_json(rng: random.Random, n: int, ledger: Path) -> str:
    good = json.dumps(base_payload(n, ledger, fails=False))
    return rng.choice([good[: rng.randrange(1, len(good))], "", "[]", "null", "1e999", '"x"', LONG,
                       "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(200)), "{" * 5000])


@pytest.mark.parametrize("kind", KINDS)
def test_no_stored_payload_crashes_a_worker_and_each_settles_exactly_once(kind, setup_factory, runtime_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    rng = random.Random(f"{SEED}-{kind}")
    payloads = [mutated(rng, n, ledger) for n in range(300)] + [not_json(rng, n, ledger) for n in range(300, 340)]
    driver = runtime.connections.get()
    for raw in payloads:
        driver.push(raw, "default")
    good = json.dumps(base_payload(10_000, ledger, fails=False))
    driver.push(good, "default")
    done = run_qctl(["work", "--stop-when-empty", "--tries", "1", "--sleep", "0.05"], setup.directory, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]

    ran = [row[1] for row in read_ledger(ledger) if row[0] == "end"]
    records = runtime.failed_store.all()
    failed_payloads = Counter(record.payload.decode("utf-8") for record in records)
    assert len({record.uuid for record in records}) == len(records)
    assert json.loads(good)["uuid"] in ran, "the good job after the poison did not run"
    runs = Counter(ran)
    unaccounted = []
    # the same text may have been pushed more than once (an empty string, "[]"): each push is its
    # own queue entry and settles on its own
    for raw, pushed in Counter(payloads).items():
        claimed = _claimed_uuid(raw)
        settled = failed_payloads[raw] + (runs[claimed] if claimed is not None else 0)
        if kind == "redis" and claimed is None and failed_payloads[raw] == 1:
            # a Redis list entry is its bytes: equal garbage pushed twice is one failed record (its
            # uuid comes from the bytes, so a crash between insert and delete cannot double it)
            settled = pushed
        if settled != pushed:  # one left unsettled, or one settled twice
            unaccounted.append((pushed, failed_payloads[raw], raw[:600]))
    assert not unaccounted, f"{len(unaccounted)} payloads not settled exactly once, e.g. {unaccounted[:3]}"
    if kind != "redis":
        assert len(records) + len(ran) == len(payloads) + 1
    assert queue_size(runtime) == 0


def _claimed_uuid(raw: str) -> str | None:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    uuid = body.get("uuid") if isinstance(body, dict) else None
    return uuid if isinstance(uuid, str) else None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_payload_that_cannot_be_decoded_fails_on_its_first_reservation_not_after_its_tries(setup_factory, runtime_factory, kind, tmp_path) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory(kind)
    runtime = runtime_factory(setup)
    ledger = tmp_path / "ledger"
    bodies = []
    for n, garbage in enumerate(TYPED_GARBAGE):
        body = base_payload(n, ledger, fails=False)
        body["maxTries"] = None  # the worker's --tries 5 applies: a retry would show
        body["data"]["command"]["n"] = garbage
        bodies.append(json.dumps(body).replace('"DEEP"', "[" * 5000 + "]" * 5000))
    retry_until = base_payload(99, ledger, fails=False)
    retry_until["retryUntil"] = "tomorrow"
    bodies.append(json.dumps(retry_until))
    driver = runtime.connections.get()
    for raw in bodies:
        driver.push(raw, "default")
    done = run_qctl(["work", "--stop-when-empty", "--tries", "5", "--sleep", "0.05"], setup.directory, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    records = runtime.failed_store.all()
    ran = {row[1] for row in read_ledger(ledger) if row[0] == "end"}
    refused = [r for r in records if "too many times" not in r.error_line]
    # every payload settled once: the decodable ones ran, the others failed at once with their reason
    assert len(records) + len(ran) == len(bodies) and len(refused) == len(records), [r.error_line for r in records]
    assert all("\n" not in r.error_line for r in records)
