"""RateLimited: run a job only while its named limiter allows it, else put it back until it may."""

from __future__ import annotations

import time
from typing import Any, Self

from qctl.cache import keys
from qctl.middleware.base import Next, cache_of, seconds
from qctl.middleware.limits import RateLimiter

WAIT_SECONDS = 1.0
"""A job whose window frees within this long (in all) waits for it in the worker instead of being
released: a busy per-second limit then runs at its rate, not at the rate releases come back."""
RELEASE_MARGIN_SECONDS = 0.05
"""Added to the wait a denied hit is given, so the released job comes back after the window frees up."""


class RateLimited:
    """`RateLimited("uploads")`: the limits `RateLimiter.for_("uploads", fn)` gives the job.

    A job whose window frees within a second waits for it where it is; otherwise it is released.
    Each limit is hit, atomically (checked and counted together on the cache store), so
    any number of workers together stay under it. A denied job is released until the window
    frees up — jobs denied together are spread over the following windows at the limit's rate —
    with `dont_release()` it is deleted instead. With several limits, a hit counted
    on an earlier limit stays counted when a later one denies (the limits err on the safe side).
    """

    def __init__(self, name: str, *, cache: str | None = None) -> None:
        RateLimiter.limiter(name)  # an unknown name is an error where the middleware is built
        self.name = name
        self.cache = cache
        self.releases = True
        self.release_seconds: float | None = None

    def dont_release(self) -> Self:
        self.releases = False
        return self

    def release_after(self, delay: float) -> Self:
        """Put a denied job back after `delay` seconds instead of when its window frees up."""
        self.release_seconds = seconds(delay, "RateLimited.release_after")
        return self

    def handle(self, job: Any, next: Next) -> Any:
        store = cache_of(job, self.cache)
        waited = 0.0
        for limit in RateLimiter.limits_for(self.name, job):
            key = keys.limiter(self.name, limit.key, limit.max_jobs, limit.period)
            hit = store.hit(key, limit.max_jobs, limit.period)
            while not hit.allowed and self.releases and waited + hit.retry_after <= WAIT_SECONDS:
                time.sleep(hit.retry_after)  # frees soon: cheaper than a trip back through the queue
                waited += hit.retry_after
                hit = store.hit(key, limit.max_jobs, limit.period)
            if not hit.allowed:
                if self.releases:
                    job.release(self.release_seconds if self.release_seconds is not None else self.wait(store, key, limit, hit))
                return None
        return next(job)

    @staticmethod
    def wait(store: Any, key: str, limit: Any, hit: Any) -> float:
        """When a denied job should come back: jobs denied within one period get places in line,
        spaced at the limit's own rate, so a backlog returns as fast as the limit lets it through and
        not all at once (a herd that would be denied again, each denial a write)."""
        place = store.increment(key + ":line", 1, ttl=limit.period)
        return float(hit.retry_after + (place - 1) * limit.period / limit.max_jobs + RELEASE_MARGIN_SECONDS)
