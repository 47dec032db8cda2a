"""Per-job timeouts that stop a job even when it is stuck in C code holding the GIL.

Two layers, because a Python signal handler (or a watchdog thread) only runs
when the interpreter gets control back, which a C call holding the GIL never gives:

- soft, at `timeout`: a SIGALRM handler does the bookkeeping (fail the job, or
  release it for its next attempt), then ends the process;
- hard, at `timeout + grace`: faulthandler's watchdog is a C thread that needs no
  GIL; it dumps every thread's stack to stderr and ends the process. When the
  soft layer does run, it re-arms the hard one so its bookkeeping gets `grace`
  seconds of its own before being cut off.

Either way the worker exits with status 1 (EXIT_TIMED_OUT; faulthandler's exit
status is always 1, so the soft layer uses the same) and its process manager
starts a fresh one. A job the hard layer stopped stays reserved and comes back
after `retry_after`, its attempt (and a stall) counted.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import logging
import mmap
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from qctl.worker.stop import EXIT_ERROR

log = logging.getLogger("qctl.worker")

GRACE_SECONDS = 2.0
"""How long after its timeout a job stuck in C code is cut off (and how long timeout bookkeeping may take)."""

EXIT_TIMED_OUT = EXIT_ERROR
"""Exit status of a worker whose job timed out, from either layer."""

TimeoutGuard = Callable[..., AbstractContextManager[None]]
"""(seconds, on_timeout, job_id=None) → the context the job runs in."""


def job_timeout(seconds: float | None, on_timeout: Callable[[], None], job_id: str | None = None,
                grace: float = GRACE_SECONDS) -> AbstractContextManager[None]:
    """Run the body with a deadline; `on_timeout` runs (best effort) before the process exits."""
    if not seconds or seconds <= 0:
        return NO_DEADLINE
    return Deadline(seconds, on_timeout, grace, job_id)


class Alarm:
    """The soft layer's SIGALRM handler, pointed at the running job's bookkeeping.

    Outside a worker's loop it is installed for each job and the previous handler put back
    after it; inside `resident()` it stays installed between jobs (installing a handler costs
    more than the rest of a no-op job's timeout handling together).
    """

    def __init__(self) -> None:
        self.on_timeout: Callable[[], None] | None = None
        self.grace = GRACE_SECONDS
        self.installs = 0
        self.previous: Any = None

    def arm(self, on_timeout: Callable[[], None], grace: float) -> None:
        self.install()
        self.on_timeout, self.grace = on_timeout, grace

    def disarm(self) -> None:
        self.on_timeout = None
        self.uninstall()

    def install(self) -> None:
        if self.installs == 0:
            self.previous = signal.signal(signal.SIGALRM, self.expired)
        self.installs += 1

    def uninstall(self) -> None:
        self.installs -= 1
        if self.installs == 0:
            signal.signal(signal.SIGALRM, self.previous)
            self.previous = None

    @contextmanager
    def resident(self) -> Iterator[None]:
        self.install()
        try:
            yield
        finally:
            self.uninstall()

    def expired(self, signum: int, frame: FrameType | None) -> None:
        on_timeout = self.on_timeout
        if on_timeout is None:  # the timer ran out just as its job ended
            return
        faulthandler.dump_traceback_later(self.grace, exit=True)
        try:
            on_timeout()
        except BaseException:
            log.exception("timeout bookkeeping failed; the job comes back after retry_after")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_TIMED_OUT)


ALARM = Alarm()


class Deadline:
    """One job's two layers: SIGALRM at `seconds`, faulthandler's watchdog at `seconds + grace`."""

    __slots__ = ("seconds", "on_timeout", "grace", "job_id")

    def __init__(self, seconds: float, on_timeout: Callable[[], None], grace: float, job_id: str | None = None) -> None:
        self.seconds, self.on_timeout, self.grace, self.job_id = seconds, on_timeout, grace, job_id

    def __enter__(self) -> None:
        ALARM.arm(self.on_timeout, self.grace)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        HARD_DEADLINE.cover(self.seconds + self.grace, self.job_id)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        HARD_DEADLINE.release()
        ALARM.disarm()

    def extend(self, seconds: float) -> None:
        """Move both layers `seconds` later (an async job: its own cancel must come first)."""
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left + seconds)
            HARD_DEADLINE.cover(left + seconds + self.grace, self.job_id)


class NoDeadline:
    def __enter__(self) -> None:
        HARD_DEADLINE.disarm()  # a watchdog lingering from the previous job must not cut this one off

    def __exit__(self, *exc: object) -> None:
        return None


NO_DEADLINE = NoDeadline()


@contextmanager
def no_timeout(seconds: float | None, on_timeout: Callable[[], None], job_id: str | None = None) -> Iterator[None]:
    """For jobs run inside the caller's process (sync driver, dispatch_sync): never end that process."""
    yield


class Witness:
    """Where the hard layer's stack dump goes, with the running job's uuid in the file's first bytes.

    faulthandler's watchdog can only write to a file and exit: no Python runs, no store is reached.
    So each worker process keeps one file (`<dir>/<host>-<pid>.hard-timeout`), names the job it
    starts in a fixed-size header (one pwrite), and lets faulthandler append the dump after it. A
    worker that starts on the same host (the process manager's fresh one) reads the files whose
    process is gone (`hard_timeouts_left`): a dump means that job was ended by its timeout, not lost
    with a worker that died — a timed-out attempt, not a stall.
    """

    HEADER = 64

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}.hard-timeout"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.pwrite(self.fd, b" " * self.HEADER, 0)
        os.lseek(self.fd, self.HEADER, os.SEEK_SET)  # the dump lands after the header
        # the header is written through a shared mapping: a memory copy per job, not a system call;
        # the kernel keeps it in the file whatever happens to the process
        self.header = mmap.mmap(self.fd, self.HEADER)

    def name(self, job_id: str) -> None:
        self.header[:] = job_id.encode("ascii", "replace")[: self.HEADER].ljust(self.HEADER)

    def close(self) -> None:
        self.header.close()
        os.close(self.fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


@dataclass(frozen=True)
class HardTimeout:
    """A job some earlier worker on this host was stopped in by the hard layer, and its stack dump."""

    job_id: str
    pid: int
    dump: str


def witness_directory(project: str) -> Path:
    """`$QCTL_RUNTIME_DIR`, else a per-user folder under the system's temporary directory; one
    subfolder per project (`project` names it: its config file's folder), so workers of another
    project on the host never read this one's witnesses."""
    configured = os.environ.get("QCTL_RUNTIME_DIR")
    user = os.getuid() if hasattr(os, "getuid") else "user"
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / f"qctl-{user}"
    return root / hashlib.sha1(project.encode("utf-8", "replace")).hexdigest()[:12]


def hard_timeouts_left(directory: Path) -> list[HardTimeout]:
    """Claim and read the witnesses of this host's workers that are gone; a dump in one is a hard timeout."""
    found: list[HardTimeout] = []
    prefix = f"{socket.gethostname()}-"
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(prefix) and p.suffix == ".hard-timeout"]
    except OSError:
        return found
    for path in candidates:
        try:
            pid = int(path.stem[len(prefix):])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        claimed = path.with_suffix(f".claimed-{os.getpid()}")
        try:
            path.rename(claimed)  # one reader per file, even when several workers start at once
            raw = claimed.read_bytes()
            claimed.unlink()
        except OSError:
            continue
        header, dump = raw[: Witness.HEADER].decode("ascii", "replace").strip(), raw[Witness.HEADER:]
        if header and dump.strip():
            found.append(HardTimeout(header, pid, dump.decode("utf-8", "replace")))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HardDeadline:
    """faulthandler's watchdog, which may stay armed between back-to-back jobs of a worker.

    Arming or cancelling it starts or joins a C thread: more time than a Redis round trip.
    Inside `between_jobs()` (the worker's loop) a finished job leaves it armed; the next job
    re-arms it only when the deadline set does not fit (at most REARM_SLACK late), and the
    worker calls `disarm()` before it waits. Everywhere else each job arms and cancels it.
    """

    def __init__(self) -> None:
        self.until: float | None = None
        self.lingering = False
        self.witness: Witness | None = None
        """Set by a worker (`witnessed`): the dump goes there, named after the running job."""

    def cover(self, seconds: float, job_id: str | None = None) -> None:
        witness = self.witness
        if witness is not None and job_id is not None:
            witness.name(job_id)
        due = time.monotonic() + seconds
        if self.until is not None and due <= self.until <= due + REARM_SLACK:
            return
        slack = REARM_SLACK if self.lingering else 0.0
        if witness is not None:
            faulthandler.dump_traceback_later(seconds + slack, exit=True, file=witness.fd)
        else:
            faulthandler.dump_traceback_later(seconds + slack, exit=True)
        self.until = due + slack

    @contextmanager
    def witnessed(self, directory: Path) -> Iterator[None]:
        """A worker's run: hard stops write to its witness file (see Witness)."""
        try:
            self.witness = Witness(directory)
        except OSError as exc:  # a read-only temp dir: hard stops still work, only unwitnessed
            log.warning("cannot keep a hard-timeout witness in %s (%s); a job its hard timeout stops "
                        "will count as a stall", directory, exc)
            yield
            return
        try:
            yield
        finally:
            self.disarm()
            witness, self.witness = self.witness, None
            witness.close()

    def release(self) -> None:
        if not self.lingering:
            self.disarm()

    def disarm(self) -> None:
        if self.until is not None:
            faulthandler.cancel_dump_traceback_later()
            self.until = None

    @contextmanager
    def between_jobs(self) -> Iterator[None]:
        self.lingering = True
        try:
            yield
        finally:
            self.lingering = False
            self.disarm()


REARM_SLACK = 0.25
"""How much later than `timeout + grace` a lingering watchdog may fire (so it is re-armed at most four times a second)."""
HARD_DEADLINE = HardDeadline()


@contextmanager
def worker_loop() -> Iterator[None]:
    """A worker running jobs back to back: the SIGALRM handler stays installed and the watchdog may
    linger between jobs, so neither is set up again for every job."""
    with ALARM.resident(), HARD_DEADLINE.between_jobs():
        yield
