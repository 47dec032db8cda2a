"""`qctl.Queue.bulk(jobs)` on every driver: everything pushed, to the right queues, in order, ids returned."""

from __future__ import annotations

import json

import pytest
from qctl_testjobs import Ok

import qctl
from qctl import runtime
from tests.drivers.test_conformance import KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_queue_bulk_pushes_every_job(setup_factory, runtime_factory, kind: str) -> None:  # type: ignore[no-untyped-def]
    built = runtime_factory(setup_factory(kind))
    jobs = [Ok(n).on_queue("bulk" if n % 2 else "other") for n in range(10)] + [Ok(99).delay(60)]
    with runtime.use(built):
        ids = qctl.Queue.bulk(jobs)
    assert len(ids) == 11 and len(set(ids)) == 11
    driver = built.connections.get()
    assert driver.size("bulk") == 5 and driver.size("other") == 5 and driver.size("default") == 1
    popped = [driver.pop(["bulk"]) for _ in range(5)]
    commands = [json.loads(job.raw)["data"]["command"]["n"] for job in popped if job is not None]
    assert commands == [1, 3, 5, 7, 9]
    assert [json.loads(job.raw)["uuid"] for job in popped if job is not None] == [ids[n] for n in (1, 3, 5, 7, 9)]


def test_a_bad_job_pushes_nothing(setup_factory, runtime_factory) -> None:  # type: ignore[no-untyped-def]
    built = runtime_factory(setup_factory("sqlite"))
    with runtime.use(built), pytest.raises(TypeError):
        qctl.Queue.bulk([Ok(1), Ok(lambda: 1)])  # type: ignore[arg-type]
    assert built.connections.get().size("default") == 0
