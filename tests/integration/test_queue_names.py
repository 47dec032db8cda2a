"""Queue names a connection cannot hold are refused where they enter (hardening §3): on Redis a name
ending in one of the driver's own key suffixes, on every driver a name `--queue` could never select."""

from __future__ import annotations

import pytest
import qctl_testjobs as jobs

from qctl.drivers.names import REDIS_SUFFIXES, queue_name_problem
from qctl.drivers.redis_keys import queue_keys
from qctl.errors import UsageError
from qctl.runtime import use
from tests.support.processes import run_qctl


def test_the_suffixes_refused_are_exactly_the_keys_a_redis_queue_uses() -> None:
    keys = queue_keys("p:", "q")
    assert {key.removeprefix(keys.ready + ":") for key in keys.all() if key != keys.ready} == set(REDIS_SUFFIXES)


@pytest.mark.parametrize("suffix", REDIS_SUFFIXES)
def test_a_redis_queue_named_like_another_queues_key_is_refused_at_dispatch_and_at_the_worker(setup_factory, runtime_factory, suffix: str) -> None:  # type: ignore[no-untyped-def]
    setup = setup_factory("redis")
    runtime = runtime_factory(setup)
    name = f"q:{suffix}"
    with use(runtime):
        with pytest.raises(UsageError, match=f"cannot end in :{suffix}"):
            jobs.Ok(1).on_queue(name).dispatch()
        assert jobs.Ok(2).on_queue("q").dispatch()  # the queue it would have collided with is untouched
    assert runtime.connections.get().size("q") == 1
    done = run_qctl(["work", "--queue", f"default,{name}", "--once"], setup.directory)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot end in :{suffix}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert runtime.connections.get().size("q") == 1


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("name", ["a,b", " padded", "padded ", "bell\x07", "x" * 256])
def test_a_queue_no_worker_could_select_is_refused_at_dispatch(setup_factory, runtime_factory, kind: str, name: str) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_factory(setup_factory(kind))
    with use(runtime), pytest.raises(UsageError) as refused:
        jobs.Ok(1).on_queue(name).dispatch()
    assert "\n" not in str(refused.value)
    assert runtime.connections.get().size("default") == 0


def test_suffix_names_are_fine_off_redis_and_colons_are_fine_on_it() -> None:
    assert queue_name_problem("q:notify", "database") is None
    assert queue_name_problem("emails:high", "redis") is None
    assert queue_name_problem("{default}", "redis") is None
    assert queue_name_problem("notify", "redis") is None
