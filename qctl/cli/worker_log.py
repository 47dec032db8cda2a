"""What a worker prints, through one writer: every line has a UTC timestamp, a level, the worker's
name and pid — as text, or as one JSON object per line (`--log-format json`).

Job lines (`-v`: every job; always: failures) go to stdout, as Laravel's worker prints them; the
worker's own lines (start, stop, notices, Python `logging` warnings) go to stderr. A process
manager that merges the two (supervisord's `redirect_stderr`, which `supervisor:config` writes)
gets one stream in one format. `-q` keeps only warnings and errors.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

from qctl.cli.lines import printable
from qctl.events import (
    EventBus,
    JobFailed,
    JobProcessed,
    JobReleasedAfterException,
    WorkerNotice,
    WorkerStopping,
)
from qctl.failed.base import clean_text

FORMATS = ("text", "json")
_LEVELS = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING", logging.ERROR: "ERROR"}


def utc_now() -> str:
    """ISO-8601 in UTC with milliseconds: `2026-12-03T07:30:00.123Z`."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class WorkerLog:
    def __init__(self, worker: str, log_format: str = "text", verbose: bool = False, quiet: bool = False,
                 pid: int | None = None) -> None:
        self.worker = worker
        self.pid = pid if pid is not None else os.getpid()
        self.json = log_format == "json"
        self.verbose = verbose and not quiet
        self.quiet = quiet
        self._lock = threading.Lock()
        """Slots of a worker with `--concurrency` report from their own threads: one line at a time."""

    # --- what a worker says ------------------------------------------------------------

    def started(self, connection: str, queues: tuple[str, ...]) -> None:
        self.say(logging.INFO, "worker_started", f"worker started on {connection!r}, queues {','.join(queues)}",
                 connection=connection, queue=",".join(queues))

    def stopped(self, status: int, reason: str) -> None:
        level = logging.INFO if status == 0 else logging.WARNING
        self.say(level, "worker_stopped", f"worker stopped: {reason} (exit status {status})", status=status, reason=reason)

    def notice(self, message: str, level: int = logging.WARNING) -> None:
        self.say(level, "notice", message)

    def job(self, job: Any, outcome: str, level: int, exc: BaseException | None = None, detail: str = "") -> None:
        runtime_ms = (time.monotonic() - getattr(job, "started", time.monotonic())) * 1000
        error = _first_line(exc)
        fields = {"job_id": getattr(job, "job_id", "?"), "class": getattr(job, "display_name", "?"),
                  "queue": getattr(job, "queue", None), "status": outcome, "runtime_ms": round(runtime_ms, 1)}
        if error:
            fields["error"] = error
        if self.json:
            self._write(sys.stdout, level, "job", None, fields)
            return
        text = f"{fields['job_id']} {fields['class']} {outcome}{detail} {runtime_ms:.1f}ms"
        self._write(sys.stdout, level, "job", text + (f"  {error}" if error else ""), {})

    # --- plumbing -----------------------------------------------------------------------

    def say(self, level: int, event: str, message: str, **fields: Any) -> None:
        if self.quiet and level < logging.WARNING:
            return
        self._write(sys.stderr, level, event, message, fields)

    def _write(self, stream: TextIO, level: int, event: str, message: str | None, fields: dict[str, Any]) -> None:
        name = _LEVELS.get(level, logging.getLevelName(level))
        if self.json:
            record: dict[str, Any] = {"ts": utc_now(), "level": name.lower(), "worker": self.worker, "pid": self.pid,
                                      "event": event}
            if message is not None:
                record["message"] = clean_text(message)
            record.update({k: clean_text(v) if isinstance(v, str) else v for k, v in fields.items()})
            line = json.dumps(record, ensure_ascii=False)
        else:
            line = f"{utc_now()} {name:<7} {self.worker}[{self.pid}] " + printable(message or "").replace("\n", "\\n")
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def listen(self, events: EventBus) -> None:
        """Failures, notices and the stop line always; every job's outcome with -v."""
        events.listen(WorkerNotice, lambda e: self.notice(e.message, e.level))
        events.listen(WorkerStopping, lambda e: self.stopped(e.status, e.reason))
        events.listen(JobFailed, lambda e: self.job(e.job, "FAIL", logging.ERROR, e.exception))
        if self.verbose:
            events.listen(JobProcessed, lambda e: self.job(e.job, _done(e.job), logging.INFO))
            events.listen(JobReleasedAfterException, lambda e: self.job(
                e.job, "RETRY", logging.WARNING, e.exception, f" in {e.delay:g}s"))
        self.capture_logging()

    def capture_logging(self) -> None:
        """Python `logging` (qctl's own warnings, a job's log calls) through the same lines."""
        handler = _Handler(self)
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(logging.INFO if self.verbose else logging.WARNING)


class _Handler(logging.Handler):
    def __init__(self, log: WorkerLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            if self.log.json:
                self.log.say(record.levelno, "log", message, logger=record.name)
            else:
                for n, part in enumerate(message.splitlines() or [""]):  # a traceback stays readable
                    self.log.say(record.levelno, "log", part if n == 0 else "  " + part)
        except Exception:
            self.handleError(record)


def _done(job: object) -> str:
    """DONE; RELEASED for a job that put itself (or its middleware put it) back; or what stopped a
    job its middleware never let reach handle() (it is deleted)."""
    if getattr(job, "released", False):
        return "RELEASED"
    return "DONE" if getattr(job, "handled", True) else "SKIPPED by middleware (deleted)"


def _first_line(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = clean_text(f"{type(exc).__qualname__}: {exc}")  # lone surrogates must not reach stdout
    return text.splitlines()[0] if text else ""
