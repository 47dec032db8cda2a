"""ThrottlesExceptions' state on the cache store: an exception is counted and flagged, a success
clears both (bench/round_trips.py shows a success without counted exceptions pays only the read).
On the in-process memory store."""

from __future__ import annotations

from typing import Any

from qctl.cache import keys
from qctl.cache.memory import MemoryCacheStore
from qctl.middleware import ThrottlesExceptions
from qctl.middleware.throttles import COUNTED


class Context:
    """What the middleware asks of a running job: its id, the cache store, and release()."""

    def __init__(self, store: MemoryCacheStore) -> None:
        self.store = store
        self.job_id = "job-1"
        self.released: list[float] = []

    def cache(self, name: str | None = None) -> MemoryCacheStore:
        return self.store

    def release(self, seconds: float) -> None:
        self.released.append(seconds)


class Job:
    def __init__(self, context: Context) -> None:
        self._qctl_ctx = context

    def release(self, seconds: float = 0) -> None:
        self._qctl_ctx.release(seconds)


def run(throttle: ThrottlesExceptions, job: Job, fails: bool) -> Any:
    def handle(_: Any) -> str:
        if fails:
            raise ConnectionError("flaky")
        return "done"

    return throttle.handle(job, handle)


def test_a_success_without_counted_exceptions_leaves_the_store_empty() -> None:
    store = MemoryCacheStore()
    job = Job(Context(store))
    assert run(ThrottlesExceptions(3, decay_seconds=30).by("api"), job, fails=False) == "done"
    assert store.items("") == {}


def test_a_success_after_a_counted_exception_clears_the_count_and_its_flag() -> None:
    store = MemoryCacheStore()
    context = Context(store)
    throttle, key = ThrottlesExceptions(3, decay_seconds=30).by("api"), keys.throttle("api")
    assert run(throttle, Job(context), fails=True) is None
    assert context.released == [0.0]
    assert store.hits(key, 30) == 1 and store.get(key + COUNTED) == "1"
    assert run(throttle, Job(context), fails=False) == "done"
    assert store.hits(key, 30) == 0 and store.get(key + COUNTED) is None
    assert run(throttle, Job(context), fails=True) is None  # counting starts afresh
    assert store.hits(key, 30) == 1
