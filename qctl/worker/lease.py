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


class LeaseKeeper:
    def __init__(self, retry_after: int | None) -> None:
        self.interval = max(0.5, retry_after / 3) if retry_after else None
        self._current: ReservedJob | None = None
        self._since = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def hold(self, reserved: ReservedJob) -> None:
        """From now until `drop()`, renew this job's lease (the thread starts with the first job)."""
        if self.interval is None:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qctl-lease", daemon=True)
            self._thread.start()
        self._since = time.monotonic()
        self._current = reserved

    def drop(self) -> None:
        self._current = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

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
