"""No-op jobs for the benchmarks; workers load them through `app = ["qctl_bench_jobs"]`."""

from __future__ import annotations

from bench_span import note_run

from qctl import Job, Limit, RateLimiter
from qctl.middleware import RateLimited, WithoutOverlapping


class Noop(Job):
    """Does nothing but note when it ran (see bench_span)."""

    def handle(self) -> None:
        note_run()


# Middleware benchmarks (bench/middleware.py): the limit is far above any drain rate, and each
# job overlaps only with itself, so the figures are the middleware's cost, never a wait.
RateLimiter.for_("bench", lambda job: Limit.per_second(1_000_000))


class NoopRateLimited(Noop):
    def middleware(self) -> list[object]:
        return [RateLimited("bench")]


class NoopWithoutOverlapping(Noop):
    def __init__(self, n: int = 0) -> None:
        self.n = n

    def middleware(self) -> list[object]:
        return [WithoutOverlapping(f"bench-{self.n}")]
