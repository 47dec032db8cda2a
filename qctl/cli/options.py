"""Options shared by several commands, declared once (work, listen, supervisor:config, supervise)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from qctl.cli.work_run import parse_backoff as parse_backoff
from qctl.cli.work_run import parse_queues as parse_queues
from qctl.errors import UsageError
from qctl.limits import MAX_COUNT, MAX_HOURS, MAX_SECONDS, out_of_bounds
from qctl.worker.options import MAX_CONCURRENCY, WorkerOptions

OptionCheck = Callable[[typer.Context, typer.CallbackParam, Any], Any]


def bounded(low: float, high: float, unit: str) -> OptionCheck:
    """A Typer callback refusing a number outside low..high (NaN and infinities too) with one line, exit 2."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        problem = None if value is None or ctx.resilient_parsing else out_of_bounds(value, low, high, unit)
        if problem:
            raise UsageError(f"{max(param.opts, key=len)}: {problem}")
        return value

    return check


SECONDS = bounded(0, MAX_SECONDS, "seconds")
HOURS = bounded(0, MAX_HOURS, "hours")
COUNT = bounded(0, MAX_COUNT, "")
AT_LEAST_ONE = bounded(1, MAX_COUNT, "")

WORKER_PANEL = "Worker options"

def complete_connection(incomplete: str) -> list[str]:
    """Shell completion: the connection names of the config this directory finds."""
    from qctl import config

    try:
        names = sorted(config.load().connections)
    except Exception:  # a broken config completes nothing rather than printing a traceback into the shell
        return []
    return [name for name in names if name.startswith(incomplete)]


Connection = Annotated[str | None, typer.Argument(help="Connection name from the config (default: the default connection).",
                                                   autocompletion=complete_connection)]
Queue = Annotated[str | None, typer.Option("--queue", help="Queues to work, highest priority first: high,default.", rich_help_panel=WORKER_PANEL)]
Once = Annotated[bool, typer.Option("--once", help="Process a single job, then exit.", rich_help_panel=WORKER_PANEL)]
StopWhenEmpty = Annotated[bool, typer.Option("--stop-when-empty", help="Exit when the queues are empty.", rich_help_panel=WORKER_PANEL)]
MaxJobs = Annotated[int, typer.Option("--max-jobs", callback=COUNT, help="Exit after this many jobs (0 = no limit).", rich_help_panel=WORKER_PANEL)]
MaxTime = Annotated[float, typer.Option("--max-time", callback=SECONDS, help="Exit after this many seconds (0 = no limit).", rich_help_panel=WORKER_PANEL)]
Memory = Annotated[int, typer.Option("--memory", callback=COUNT, help="Exit (status 12) once RSS passes this many MB.", rich_help_panel=WORKER_PANEL)]
Sleep = Annotated[float, typer.Option("--sleep", callback=SECONDS, help="Seconds to sleep when no job is available.", rich_help_panel=WORKER_PANEL)]
Rest = Annotated[float, typer.Option("--rest", callback=SECONDS, help="Seconds to rest after each job.", rich_help_panel=WORKER_PANEL)]
Tries = Annotated[int, typer.Option("--tries", callback=COUNT, help="Attempts before a job fails (0 = unlimited); a job's own `tries` wins.", rich_help_panel=WORKER_PANEL)]
Backoff = Annotated[str, typer.Option("--backoff", help="Seconds before retrying a failed job: 5 or 1,5,10 (the last repeats).", rich_help_panel=WORKER_PANEL)]
Timeout = Annotated[float, typer.Option("--timeout", callback=SECONDS, help="Seconds a job may run (0 = no limit); a job's own `timeout` wins.", rich_help_panel=WORKER_PANEL)]
Concurrency = Annotated[int, typer.Option("--concurrency", callback=bounded(1, MAX_CONCURRENCY, ""), help="Jobs run at once in this process: threads for def handle, one event loop for async def.", rich_help_panel=WORKER_PANEL)]
Force = Annotated[bool, typer.Option("--force", help="Work even in maintenance mode.", rich_help_panel=WORKER_PANEL)]
Name = Annotated[str, typer.Option("--name", help="Worker name shown in `qctl workers`.", rich_help_panel=WORKER_PANEL)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print each job: id, class, outcome, runtime.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON array instead of a table.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors (failed jobs, notices).")]


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise UsageError(f"--log-format: expected text or json, got {value!r}")
    return value


LogFormat = Annotated[str, typer.Option("--log-format", metavar="text|json", callback=_log_format,
                                        help="Worker lines as text, or as one JSON object per line.")]

SUPERVISOR_PANEL = "Supervisor options"
Program = Annotated[str, typer.Option("--program", help="Name of the supervisord [program:…] section.", rich_help_panel=SUPERVISOR_PANEL)]
Numprocs = Annotated[int, typer.Option("--numprocs", callback=AT_LEAST_ONE, help="How many worker processes to run.", rich_help_panel=SUPERVISOR_PANEL)]
User = Annotated[str | None, typer.Option("--user", help="User the workers run as (default: the current user).", rich_help_panel=SUPERVISOR_PANEL)]
Log = Annotated[Path | None, typer.Option("--log", help="Worker log file (default: ./<program>.log).", rich_help_panel=SUPERVISOR_PANEL)]
Output = Annotated[Path | None, typer.Option("--output", help="Write the config to this file instead of printing it.", rich_help_panel=SUPERVISOR_PANEL)]
Stopwaitsecs = Annotated[int | None, typer.Option("--stopwaitsecs", callback=bounded(1, MAX_SECONDS, "seconds"), help="Seconds supervisord waits for a stopping worker before SIGKILL (default: --timeout + 30, or 3600 without a timeout).", rich_help_panel=SUPERVISOR_PANEL)]

WORKER_OPTION_TYPES: dict[str, Any] = {
    "queue": Queue, "once": Once, "stop_when_empty": StopWhenEmpty, "max_jobs": MaxJobs, "max_time": MaxTime,
    "memory": Memory, "sleep": Sleep, "rest": Rest, "tries": Tries, "backoff": Backoff, "timeout": Timeout,
    "concurrency": Concurrency, "force": Force, "name": Name, "quiet": Quiet, "log_format": LogFormat,
}
"""Every worker option, in the order `--help` lists them."""


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
    concurrency: int = 1,
    quiet: bool = False,
    log_format: str = "text",
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
        concurrency=concurrency,
        force=force,
        quiet=quiet,
        log_format=log_format,
    )


def default_worker_values() -> dict[str, Any]:
    """The option defaults, taken from WorkerOptions so the CLI and the library never disagree."""
    default = WorkerOptions()
    values = {name: getattr(default, name) for name in WORKER_OPTION_TYPES if hasattr(default, name)}
    values["queue"] = ",".join(default.queues) or None
    values["backoff"] = ",".join(str(b) for b in default.backoff)
    return values


F = TypeVar("F", bound=Callable[..., Any])


def takes_worker_options(command: F) -> F:
    """Give a command every worker option; it receives them as one WorkerOptions in its `worker` parameter.

    The options are declared once (above); work, listen, supervisor:config and
    supervise all take them through this decorator, so they can never drift apart.
    """
    own = inspect.signature(command, eval_str=True)
    defaults = default_worker_values()
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=defaults[name])
        for name, kind in WORKER_OPTION_TYPES.items()
    ]

    @functools.wraps(command)
    def with_worker_options(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in WORKER_OPTION_TYPES}
        return command(*args, worker=worker_options(**values), **kwargs)

    kept = [p for p in own.parameters.values() if p.name != "worker"]
    with_worker_options.__signature__ = own.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
    with_worker_options.__annotations__ = {p.name: p.annotation for p in [*kept, *added]}
    return with_worker_options  # type: ignore[return-value]


LISTEN_PANEL = "Listen options"
Watch = Annotated[list[Path] | None, typer.Option("--watch", help="Also watch this file or directory (repeatable); the current directory and the app packages always are.", rich_help_panel=LISTEN_PANEL)]
Poll = Annotated[float, typer.Option("--poll", callback=bounded(0.05, MAX_SECONDS, "seconds"), help="Seconds between scans for changed files.", rich_help_panel=LISTEN_PANEL)]
PerJob = Annotated[bool, typer.Option("--per-job", help="Run every job in a fresh worker process (as Laravel's queue:listen does): slower, nothing carries over from job to job.", rich_help_panel=LISTEN_PANEL)]
