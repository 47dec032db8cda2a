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
