"""A supervisord [program:…] section for a pool of qctl workers, and the checks that keep it safe.

Two settings decide whether a pool loses or duplicates work, so an unsafe pair
is refused with the reason instead of written:
- `--timeout` must stay below the connection's `retry_after`, or a stuck job is
  handed to a second worker while the first still runs it;
- `stopwaitsecs` must cover `--timeout`, or supervisord SIGKILLs a stopping
  worker in the middle of its last job.
"""

from __future__ import annotations

import getpass
import math
import re
from dataclasses import dataclass
from pathlib import Path

from qctl.config import ConnectionConfig
from qctl.errors import UsageError
from qctl.worker.options import WorkerOptions

DEFAULT_PROGRAM = "qctl-worker"
STOP_MARGIN_SECONDS = 30
"""Added to --timeout for the default stopwaitsecs: time to settle the job and exit."""
STOPWAIT_WITHOUT_TIMEOUT = 3600
WORKER_DRIVERS = ("database", "redis")
LOG_MAXBYTES = "50MB"
PROGRAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


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
    retry_after, timeout = connection.retry_after, options.timeout
    if retry_after is not None and (timeout <= 0 or timeout >= retry_after):
        shown = "0 (no limit)" if timeout <= 0 else f"{timeout:g}"
        return (f"--timeout {shown} is not below retry_after ({retry_after} s) of connection {connection.name!r}: "
                f"a stuck job would be handed to a second worker while the first still runs it; use a --timeout under {retry_after}")
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
    command = (*request.executable, *request.config_args, "work", request.connection.name, *options.to_cli_args(),
               *(["-v"] if request.verbose else []))
    return Program(
        name=request.program,
        command=command,
        directory=str(directory),
        numprocs=request.numprocs,
        user=request.user or getpass.getuser(),
        log=log,
        log_maxbytes=log_maxbytes,
        stopwaitsecs=stopwaitsecs,
    )
