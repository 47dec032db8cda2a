"""What `qctl work` does, reachable without Typer: a worker's start-up is paid by every
`work --once` under cron, every restart after `--max-jobs`, every autoscaled pod.

`quick(args)` runs a plain `qctl [--config FILE] work [CONNECTION] [options]` command line
itself and returns its exit status; anything else (`--help`, an unknown or repeated option, a
value it does not take, shell completion) returns None, and the Typer app runs the line as
usual, with its own messages. The options are WorkerOptions' fields, under the flags
`WorkerOptions.to_cli_args` writes, so the two paths cannot disagree about them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from qctl.errors import QctlError, UsageError
from qctl.limits import MAX_SECONDS, out_of_bounds
from qctl.worker.options import WorkerOptions, cli_flag

if TYPE_CHECKING:
    from qctl.cli.context import CliContext


def parse_backoff(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--backoff: expected seconds like 5 or 1,5,10, got {text!r}") from None
    for value in values:
        problem = out_of_bounds(value, 0, MAX_SECONDS, "seconds each")
        if problem:
            raise UsageError(f"--backoff: {problem}")
    return values


def parse_queues(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    queues = tuple(q.strip() for q in text.split(",") if q.strip())
    if not queues:
        raise UsageError("--queue: expected one or more queue names, like high,default")
    return queues


def run_worker(cli: CliContext, connection: str | None, verbose: bool, worker: WorkerOptions) -> int:
    """Start a worker on `connection` (None: the default), render its events, and return its exit status."""
    from qctl.cli.worker_log import WorkerLog
    from qctl.worker.lease import lease_risk

    runtime = cli.runtime
    runtime.import_app()
    log = WorkerLog(worker.name, worker.log_format, verbose=verbose, quiet=worker.quiet)
    log.listen(runtime.events)
    built = runtime.worker(connection, worker)
    log.started(built.driver.connection_name, built.queues)
    risk = lease_risk(built.driver.connection_name, built.driver.retry_after, worker.timeout)
    if risk is not None:  # the rule supervisor:config refuses on; a worker by hand may still start
        log.notice(f"warning: {risk}")
    return built.run()


@dataclass(frozen=True)
class WorkLine:
    """A parsed `qctl work` command line."""

    config_path: str | None
    connection: str | None
    verbose: bool
    worker: WorkerOptions


_VALUE_TYPES: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str, "tuple[str, ...]": str,
                                 "tuple[int, ...]": str}
"""A field's annotation → what its flag takes (a tuple as its comma-separated text; bool: no value)."""


def _flag_kinds() -> dict[str, tuple[str, type]]:
    """Every worker flag → (WorkerOptions field, the type of its value); a field of another type has no
    quick flag (its lines go through Typer)."""
    kinds = {cli_flag(item.name): (item.name, _VALUE_TYPES[str(item.type)])
             for item in fields(WorkerOptions) if str(item.type) in _VALUE_TYPES}
    if "--quiet" in kinds:
        kinds["-q"] = kinds["--quiet"]
    return kinds


def parse_work_line(args: list[str]) -> WorkLine | None:
    """`args` as a plain `qctl work` line, or None when the Typer app should handle it."""
    config_path, at = None, 0
    if args[:1] == ["--config"] and len(args) > 1:
        config_path, at = args[1], 2
    elif args[:1] and args[0].startswith("--config="):
        config_path, at = args[0].partition("=")[2], 1
    if args[at:at + 1] != ["work"]:
        return None
    kinds, values, positional, verbose = _flag_kinds(), dict[str, Any](), list[str](), False
    rest = iter(args[at + 1:])
    for arg in rest:
        if arg in ("-v", "--verbose"):
            verbose = True
            continue
        if not arg.startswith("-"):
            positional.append(arg)
            continue
        flag, has_value, text = arg.partition("=")
        if flag not in kinds or kinds[flag][0] in values:
            return None  # unknown, abbreviated or repeated: Typer's rules and messages
        name, kind = kinds[flag]
        if kind is bool:
            if has_value:
                return None
            values[name] = True
            continue
        value = text if has_value else next(rest, None)
        if value is None or value.startswith("-"):
            return None  # a missing value, or one that looks like an option: Typer decides
        try:
            values[name] = kind(value)
        except ValueError:
            return None
    if len(positional) > 1:
        return None
    try:
        if "queues" in values:
            values["queues"] = parse_queues(values["queues"])
        if "backoff" in values:
            values["backoff"] = parse_backoff(values["backoff"])
        worker = WorkerOptions(**values)
    except UsageError:
        return None  # the Typer path words the refusal after its option (`--sleep: …`)
    return WorkLine(config_path, positional[0] if positional else None, verbose, worker)


def quick(args: list[str]) -> int | None:
    """Run a plain `qctl work` line without Typer: its exit status, or None to leave it to the Typer app."""
    from qctl.cli import _completing

    if _completing():
        return None  # shell completion is Typer's
    line = parse_work_line(args)
    if line is None:
        return None
    from qctl.cli import lines
    from qctl.cli.context import CliContext, put_cwd_on_path

    put_cwd_on_path()
    try:
        return run_worker(CliContext(config_path=line.config_path), line.connection, line.verbose, line.worker)
    except QctlError as exc:
        if line.verbose:
            import traceback

            traceback.print_exc()
        lines.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
