"""A supervisord [program:…] section for a pool of qctl workers, and the checks that keep it safe.

Two settings decide whether a pool loses or duplicates work, so an unsafe pair
is refused with the reason instead of written:
- `--timeout` must stay below the connection's `retry_after` (`qctl.worker.lease.lease_risk`,
  the rule `work` warns about), or a job stuck in C is handed to a second worker while the
  first still runs it;
- `stopwaitsecs` must cover `--timeout`, or supervisord SIGKILLs a stopping
  worker in the middle of its last job.
"""

from __future__ import annotations

import getpass
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from qctl.config import ConnectionConfig
from qctl.errors import UsageError
from qctl.worker.lease import lease_risk
from qctl.worker.options import WorkerOptions

DEFAULT_PROGRAM = "qctl-worker"
STOP_MARGIN_SECONDS = 30
"""Added to --timeout for the default stopwaitsecs: time to settle the job and exit."""
STOPWAIT_WITHOUT_TIMEOUT = 3600
WORKER_DRIVERS = ("database", "redis")
LOG_MAXBYTES = "50MB"
PROGRAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""A line break (or any control character) in a value would start a directive of its own."""
INLINE_COMMENT = re.compile(r"\s[;#]")
"""supervisord cuts a value at ' ;' or ' #' (an inline comment), silently."""


@dataclass(frozen=True)
class PoolRequest:
    """What the user asked for: which workers, how many, and how supervisord should treat them."""

    connection: ConnectionConfig
    options: WorkerOptions
    executable: tuple[str, ...]
    config_args: tuple[str, ...] = ()
    directory: Path = Path(".")
    program: str = DEFAULT_PROGRAM
    numprocs: int = 1
    user: str | None = None
    log: Path | None = None
    stopwaitsecs: int | None = None
    verbose: bool = False


@dataclass(frozen=True)
class Program:
    """One [program:…] section, every value final."""

    name: str
    command: tuple[str, ...]
    """`qctl work …` without --name: `numbered_command` adds one per process."""
    worker_name: str
    directory: str
    numprocs: int
    user: str
    log: str
    log_maxbytes: str
    stopwaitsecs: int


def default_stopwaitsecs(timeout: float) -> int:
    return math.ceil(timeout) + STOP_MARGIN_SECONDS if timeout > 0 else STOPWAIT_WITHOUT_TIMEOUT


def why_unsafe(connection: ConnectionConfig, options: WorkerOptions, stopwaitsecs: int) -> str | None:
    """The one-line reason this pool would lose or duplicate work, or None when it is sound."""
    if connection.driver not in WORKER_DRIVERS:
        return f"connection {connection.name!r} uses the {connection.driver!r} driver, which has no queue for workers; use a database or redis connection"
    timeout = options.timeout
    risk = lease_risk(connection.name, connection.retry_after, timeout)
    if risk is not None:
        return risk
    if stopwaitsecs < timeout:
        return (f"--stopwaitsecs {stopwaitsecs} is below --timeout {timeout:g}: supervisord would kill a stopping worker "
                f"in the middle of its last job; use at least {math.ceil(timeout)}")
    return None


def program_for(request: PoolRequest, log: str | None = None, log_maxbytes: str = LOG_MAXBYTES) -> Program:
    """The section for `request`; raises UsageError (exit 2) with the reason when it is unsafe."""
    options = request.options
    if not PROGRAM_NAME.fullmatch(request.program):
        raise UsageError(f"--program {request.program!r}: use letters, digits, '.', '_' and '-' only")
    stopwaitsecs = request.stopwaitsecs if request.stopwaitsecs is not None else default_stopwaitsecs(options.timeout)
    reason = why_unsafe(request.connection, options, stopwaitsecs)
    if reason is not None:
        raise UsageError(reason)
    directory = request.directory.absolute()
    log = log or str(directory / (request.log or Path(f"{request.program}.log")))
    if "%" in log:
        raise UsageError(f"log file {log!r}: supervisord cannot take a '%' in a log file name; choose another with --log")
    # the worker's --name is added when rendering: NAME-00, NAME-01, … (supervisord's process_num),
    # so the processes' log lines and heartbeats can be told apart
    unnamed = replace(options, name=WorkerOptions().name)
    command = (*request.executable, *request.config_args, "work", request.connection.name, *unnamed.to_cli_args(),
               *(["-v"] if request.verbose else []))
    check_written_values(request, log)
    return Program(
        name=request.program,
        command=command,
        worker_name=options.name,
        directory=str(directory),
        numprocs=request.numprocs,
        user=request.user or getpass.getuser(),
        log=log,
        log_maxbytes=log_maxbytes,
        stopwaitsecs=stopwaitsecs,
    )


def check_written_values(request: PoolRequest, log: str) -> None:
    """Every value that lands in the section is one plain line supervisord reads back whole; raises UsageError."""
    named: list[tuple[str, str]] = [
        ("the current directory", str(request.directory.absolute())), ("--user", request.user or ""), ("--log", log),
        ("connection name", request.connection.name), ("--name", request.options.name),
        *(("--queue", queue) for queue in request.options.queues),
        *(("the qctl command", part) for part in request.executable),
        *(("--config", part) for part in request.config_args),
    ]
    for label, value in named:
        reason = why_not_one_plain_line(value)
        if reason is not None:
            raise UsageError(f"{label} {value!r}: {reason}")


def why_not_one_plain_line(value: str) -> str | None:
    if CONTROL.search(value):
        return "a line break or other control character would write lines of its own into the supervisord config"
    if INLINE_COMMENT.search(value):
        return "supervisord would cut the value at ' ;' or ' #' (an inline comment)"
    return None
