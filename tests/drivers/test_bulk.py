"""`qctl.Queue.bulk(jobs)` on every driver: everything pushed, to the right queues, in order, ids returned;
a bad job pushes nothing; a chunk the store refuses is pushed whole or not at all where the store allows."""

from __future__ import annotations

import json

import pytest
from qctl_testjobs import BoomThreeTries, Colour, Ok

import qctl
from qctl import runtime
from qctl.errors import DriverError, SerializationError
from qctl.payload.signing import generate_key
from tests.drivers.test_conformance import KINDS, payload


@pytest.mark.parametrize("kind", KINDS)
def test_queue_bulk_pushes_every_job(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    built = runtime_factory(setup_factory(kind))
    jobs = [Ok(n).on_queue("bulk" if n % 2 else "other") for n in range(10)] + [Ok(99).delay(60)]
    with runtime.use(built, close=False):
        ids = qctl.Queue.bulk(jobs)
    assert len(ids) == 11 and len(set(ids)) == 11
    driver = built.connections.get()  # the same connection (a memory queue lives as long as it does)
    assert driver.size("bulk") == 5 and driver.size("other") == 5 and driver.size("default") == 1
    popped = [driver.pop(["bulk"]) for _ in range(5)]
    commands = [json.loads(job.raw)["data"]["command"]["n"] for job in popped if job is not None]
    assert commands == [1, 3, 5, 7, 9]
    assert [json.loads(job.raw)["uuid"] for job in popped if job is not None] == [ids[n] for n in (1, 3, 5, 7, 9)]


MORE_THAN_TWO_CHUNKS = 1003
"""Jobs in one bulk: past two chunks of every store (500 on Redis and PostgreSQL/MariaDB, fewer on SQLite)."""


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_job_pushes_nothing(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Every payload is built before the first chunk goes: a bad job at the end stops them all."""
    built = runtime_factory(setup_factory(kind))
    jobs = [Ok(n) for n in range(MORE_THAN_TWO_CHUNKS)]
    with runtime.use(built, close=False), pytest.raises(SerializationError, match=r"Ok\.n: cannot queue"):
        qctl.Queue.bulk([*jobs, Ok(lambda: 1)])  # type: ignore[arg-type]
    assert built.connections.get().size("default") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_bulk_keeps_the_order_given_across_chunks(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    built = runtime_factory(setup_factory(kind))
    jobs = [Ok(n).on_queue("odd" if n % 2 else "even") for n in range(MORE_THAN_TWO_CHUNKS)]
    with runtime.use(built, close=False):
        ids = qctl.Queue.bulk(jobs)
    driver = built.connections.get()
    for queue, first in (("even", 0), ("odd", 1)):
        popped = []
        while (job := driver.pop([queue])) is not None:
            popped.append(json.loads(job.raw))
            assert job.delete()
        assert [body["data"]["command"]["n"] for body in popped] == list(range(first, MORE_THAN_TWO_CHUNKS, 2))
        assert [body["uuid"] for body in popped] == ids[first::2]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_row_the_database_refuses_rolls_back_the_whole_bulk(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    """One transaction for the whole push: the rows of the chunks before the refused one go too."""
    driver = runtime_factory(setup_factory(kind)).connections.get()
    items = [(payload(n), "default", 0.0) for n in range(MORE_THAN_TWO_CHUNKS)] + [(payload(0), "q" * 300, 0.0)]
    with pytest.raises(DriverError):
        driver.bulk(items)  # the queue column holds 255 characters
    assert driver.size("default") == 0


@pytest.mark.parametrize("kind", KINDS)
def test_bulk_payloads_match_what_single_dispatch_writes(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Jobs of one class written from its first job's layout carry the same fields `dispatch()` gives
    them, instance overrides, option methods and typed values included; signed, they verify."""
    built = runtime_factory(setup_factory(kind, key=generate_key(), app=("qctl_testjobs", __name__)))
    jobs: list[qctl.Job] = [Ok(1), Ok(2), Ok(3), BoomThreeTries(), BoomThreeTries(), Ok(Colour.RED), Ok(4), Ok([1.5, {"a": None}])]
    jobs[2].tries = 7  # type: ignore[attr-defined]
    jobs += [Backoffs(5), Backoffs(6)]
    with runtime.use(built, close=False):
        qctl.Queue.bulk(jobs)
        expected = [json.loads(built.dispatcher.prepare(job).payload) for job in jobs]
    driver = built.connections.get()
    stored = [json.loads(job.raw) for job in iter(lambda: driver.pop(["default"]), None)]
    for body in stored + expected:
        del body["uuid"], body["pushedAt"], body["signature"]
    assert sorted(map(repr, stored)) == sorted(map(repr, expected))
    assert {body["maxTries"] for body in stored} == {None, 3, 7}
    assert sorted(body["backoff"] for body in stored if body["backoff"]) == ["5", "6"]


class Backoffs(Ok):
    """An option given by a method: each job's own value."""

    def backoff(self) -> int:
        return self.n



class OutsideTheApp(Ok):
    """Defined outside the `app` packages: a sync connection runs it, a worker must not."""


def test_a_class_run_in_process_first_is_still_checked_for_the_queue(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    built = runtime_factory(setup_factory("memory", extra='\n[connections.now]\ndriver = "sync"\n'))
    with runtime.use(built, close=False), pytest.raises(SerializationError, match="workers only run code from the app"):
        qctl.Queue.bulk([OutsideTheApp(1).on_connection("now"), OutsideTheApp(2)])
    assert built.connections.get().size("default") == 0
