"""Keep a running job's reservation alive while its worker lives.

One background thread renews the current job's lease every third of
`retry_after`, so a job that legitimately runs longer than `retry_after` is never
handed to a second worker. If the worker dies (or hangs in C code holding the
GIL), renewals stop and the job comes back after `retry_after` as usual.
Setting the current job is a plain assignment, so short jobs cost nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from qctl.drivers.base import ReservedJob
from qctl.errors import QctlError

log = logging.getLogger("qctl.worker")


def lease_risk(connection: str, retry_after: int | None, timeout: float) -> str | None:
    """The one rule for `--timeout` against `retry_after` (`work` warns, `supervisor:config` refuses).

    Renewals keep a slow job's reservation for as long as it runs, so a job longer than
    `retry_after` is safe. What renewals cannot cover is a worker that cannot renew: a job stuck in
    C code holding the GIL stops the renewing thread too, and only the timeout ends it. Unless the
    timeout (hard layer included) ends it before the reservation lapses, the job is handed to a
    second worker while the first still runs it.
    """
    from qctl.worker.timeout import GRACE_SECONDS

    if retry_after is None or (timeout > 0 and timeout + GRACE_SECONDS < retry_after):
        return None
    if timeout <= 0:
        limit = "--timeout 0 (no limit)"
    elif timeout >= retry_after:
        limit = f"--timeout {timeout:g}"
    else:
        limit = f"--timeout {timeout:g} plus the {GRACE_SECONDS:g} s a hard stop takes"
    return (
        f"{limit} is not below retry_after ({retry_after} s) of connection {connection!r}: renewals keep a slow "
        "job's reservation, but a job stuck in C code stops them, and it would run on a second worker "
        f"before the timeout ended it; use a --timeout under {max(1, retry_after - GRACE_SECONDS):g}"
    )


class RenewalThread:
    """The thread that renews leases every third of `retry_after` (none without it), until closed."""

    def __init__(self, retry_after: int | None) -> None:
        self.interval = max(0.5, retry_after / 3) if retry_after else None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self.interval is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qctl-lease", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError


class LeaseKeeper(RenewalThread):
    def __init__(self, retry_after: int | None) -> None:
        super().__init__(retry_after)
        self._current: ReservedJob | None = None
        self._since = 0.0

    def hold(self, reserved: ReservedJob) -> None:
        """From now until `drop()`, renew this job's lease (the thread starts with the first job)."""
        if self.interval is None:
            return
        self.start()
        self._since = time.monotonic()
        self._current = reserved

    def drop(self) -> None:
        self._current = None

    def _run(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(min(self.interval, 1.0)):
            job = self._current
            if job is None or time.monotonic() - self._since < self.interval:
                continue
            self._since = time.monotonic()
            try:
                if not job.renew() and self._current is job:
                    log.warning("lost the reservation of job %s on queue %s", job.key, job.queue)
            except QctlError as exc:
                log.warning("could not renew the reservation of job %s: %s", job.key, exc)


class SharedLeases(RenewalThread):
    """A worker with several slots: one thread renews every job in flight, each interval, together —
    one round trip for all of them where the driver can (`renew_many`), else one per job."""

    def __init__(self, retry_after: int | None, renew_many: Callable[[Sequence[ReservedJob]], list[bool]] | None) -> None:
        super().__init__(retry_after)
        self.renew_many = renew_many
        self.held: dict[int, ReservedJob] = {}
        """Slot number → the job it runs (a plain dict: each slot writes its own key)."""

    def slot(self, number: int) -> SlotLease:
        return SlotLease(self, number)

    def _run(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            jobs = list(self.held.copy().values())
            if jobs:
                self.renew(jobs)

    def renew(self, jobs: list[ReservedJob]) -> None:
        try:
            renewed = self.renew_many(jobs) if self.renew_many is not None else [job.renew() for job in jobs]
        except QctlError as exc:
            log.warning("could not renew the reservations of %d jobs: %s", len(jobs), exc)
            return
        for job, kept in zip(jobs, renewed, strict=True):
            if not kept and any(job is held for held in self.held.values()):
                log.warning("lost the reservation of job %s on queue %s", job.key, job.queue)


class SlotLease:
    """One slot's view of the shared renewals: what a single-slot worker's LeaseKeeper is to it."""

    __slots__ = ("leases", "number")

    def __init__(self, leases: SharedLeases, number: int) -> None:
        self.leases, self.number = leases, number

    def hold(self, reserved: ReservedJob) -> None:
        self.leases.held[self.number] = reserved

    def drop(self) -> None:
        self.leases.held.pop(self.number, None)

    def close(self) -> None:
        self.drop()
