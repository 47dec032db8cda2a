"""WithoutOverlapping: one job per key at a time, across every worker (a lock on the cache store)."""

from __future__ import annotations

from typing import Any, Self

from qctl.cache import keys
from qctl.middleware.base import Next, cache_of, class_name, context_of, seconds


class WithoutOverlapping:
    """`WithoutOverlapping(key)`: while one job of this class holds `key`, the others wait.

    A job that finds the lock taken is released after `release_after(s)` seconds (0 by default:
    straight back on its queue), or deleted with `dont_release()`. The lock is released when the
    job is done, whatever happened; a worker killed mid-job leaves it until `expire_after(s)`
    (default: the cache store's lock cap, a day). The owner is the job's id, so the same job
    coming back after its worker died takes its own lock over at once. `shared()` shares the
    key across job classes.
    """

    def __init__(self, key: Any = "", *, cache: str | None = None) -> None:
        self.key = str(key)
        self.cache = cache
        self.release_seconds: float | None = 0.0
        self.expire_seconds: float | None = None
        self.is_shared = False

    def release_after(self, delay: float) -> Self:
        self.release_seconds = seconds(delay, "WithoutOverlapping.release_after")
        return self

    def dont_release(self) -> Self:
        self.release_seconds = None
        return self

    def expire_after(self, ttl: float) -> Self:
        self.expire_seconds = seconds(ttl, "WithoutOverlapping.expire_after") or None
        return self

    def shared(self) -> Self:
        self.is_shared = True
        return self

    def lock_key(self, job: Any) -> str:
        return keys.overlap(None if self.is_shared else class_name(job), self.key)

    def handle(self, job: Any, next: Next) -> Any:
        store = cache_of(job, self.cache)
        key, owner = self.lock_key(job), context_of(job).job_id
        if not store.acquire(key, owner, self.expire_seconds):
            if self.release_seconds is not None:
                job.release(self.release_seconds)
            return None
        try:
            return next(job)
        finally:
            store.release(key, owner)
