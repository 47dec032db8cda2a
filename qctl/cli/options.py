"""Options shared by several commands, declared once (work, listen, supervisor:config, supervise)."""

from __future__ import annotations

from typing import Annotated

import typer

from qctl.errors import UsageError
from qctl.worker.options import WorkerOptions

WORKER_PANEL = "Worker options"

Connection = Annotated[str | None, typer.Argument(help="Connection name from the config (default: the default connection).")]
Queue = Annotated[str | None, typer.Option("--queue", help="Queues to work, highest priority first: high,default.", rich_help_panel=WORKER_PANEL)]
Once = Annotated[bool, typer.Option("--once", help="Process a single job, then exit.", rich_help_panel=WORKER_PANEL)]
StopWhenEmpty = Annotated[bool, typer.Option("--stop-when-empty", help="Exit when the queues are empty.", rich_help_panel=WORKER_PANEL)]
MaxJobs = Annotated[int, typer.Option("--max-jobs", min=0, help="Exit after this many jobs (0 = no limit).", rich_help_panel=WORKER_PANEL)]
MaxTime = Annotated[float, typer.Option("--max-time", min=0, help="Exit after this many seconds (0 = no limit).", rich_help_panel=WORKER_PANEL)]
Memory = Annotated[int, typer.Option("--memory", min=0, help="Exit (status 12) once RSS passes this many MB.", rich_help_panel=WORKER_PANEL)]
Sleep = Annotated[float, typer.Option("--sleep", min=0, help="Seconds to sleep when no job is available.", rich_help_panel=WORKER_PANEL)]
Rest = Annotated[float, typer.Option("--rest", min=0, help="Seconds to rest after each job.", rich_help_panel=WORKER_PANEL)]
Tries = Annotated[int, typer.Option("--tries", min=0, help="Attempts before a job fails (0 = unlimited); a job's own `tries` wins.", rich_help_panel=WORKER_PANEL)]
Backoff = Annotated[str, typer.Option("--backoff", help="Seconds before retrying a failed job: 5 or 1,5,10 (the last repeats).", rich_help_panel=WORKER_PANEL)]
Timeout = Annotated[float, typer.Option("--timeout", min=0, help="Seconds a job may run (0 = no limit); a job's own `timeout` wins.", rich_help_panel=WORKER_PANEL)]
Force = Annotated[bool, typer.Option("--force", help="Work even in maintenance mode.", rich_help_panel=WORKER_PANEL)]
Name = Annotated[str, typer.Option("--name", help="Worker name shown in `qctl workers`.", rich_help_panel=WORKER_PANEL)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print each job: id, class, outcome, runtime.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON array instead of a table.")]


def parse_backoff(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--backoff: expected seconds like 5 or 1,5,10, got {text!r}") from None
    if any(v < 0 for v in values):
        raise UsageError("--backoff: seconds cannot be negative")
    return values


def parse_queues(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    queues = tuple(q.strip() for q in text.split(",") if q.strip())
    if not queues:
        raise UsageError("--queue: expected one or more queue names, like high,default")
    return queues


def worker_options(
    *,
    queue: str | None,
    once: bool,
    stop_when_empty: bool,
    max_jobs: int,
    max_time: float,
    memory: int,
    sleep: float,
    rest: float,
    tries: int,
    backoff: str,
    timeout: float,
    force: bool,
    name: str,
) -> WorkerOptions:
    return WorkerOptions(
        name=name,
        queues=parse_queues(queue),
        once=once,
        stop_when_empty=stop_when_empty,
        max_jobs=max_jobs,
        max_time=max_time,
        memory=memory,
        sleep=sleep,
        rest=rest,
        tries=tries,
        backoff=parse_backoff(backoff),
        timeout=timeout,
        force=force,
    )
