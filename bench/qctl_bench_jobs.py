"""No-op jobs for the benchmarks; workers load them through `app = ["qctl_bench_jobs"]`."""

from __future__ import annotations

from bench_span import note_run

from qctl import Job


class Noop(Job):
    """Does nothing but note when it ran (see bench_span)."""

    def handle(self) -> None:
        note_run()
