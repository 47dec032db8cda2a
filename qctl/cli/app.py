"""The root Typer app: global options, and one line per command pointing at its module."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from qctl.__about__ import __version__
from qctl.cli import (
    batches,
    control,
    demo,
    failed,
    inspect,
    listen,
    make,
    output,
    supervisor,
    work,
    workers,
)
from qctl.cli.context import CliContext
from qctl.errors import QctlError

app = typer.Typer(
    name="qctl",
    help="Background jobs and workers for Python, the way Laravel's queues work for PHP.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["--help", "-h"]},
)


def _version(value: bool) -> None:
    if value:
        output.line(f"qctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", help="Config file (default: $QCTL_CONFIG, ./qctl.toml, [tool.qctl] in ./pyproject.toml).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    put_cwd_on_path()
    ctx.obj = CliContext(config_path=config)


def put_cwd_on_path(cwd: Path | None = None) -> None:
    """Every qctl command imports `app` modules that live beside qctl.toml without extra setup."""
    path = str(cwd or Path.cwd())
    if path not in sys.path[:1]:
        sys.path.insert(0, path)


WORK = "Workers"
FAILED = "Failed jobs"
QUEUES = "Queues"
BATCHES = "Batches"
SETUP = "Setup"

app.command("work", rich_help_panel=WORK)(work.work)
app.command("listen", rich_help_panel=WORK)(listen.listen)
app.command("restart", rich_help_panel=WORK)(control.restart)
app.command("down", rich_help_panel=WORK)(control.down)
app.command("up", rich_help_panel=WORK)(control.up)
app.command("workers", rich_help_panel=WORK)(workers.workers)
app.command("supervisor:config", rich_help_panel=WORK)(supervisor.supervisor_config)
app.command("supervise", rich_help_panel=WORK)(supervisor.supervise)
app.command("failed", rich_help_panel=FAILED)(failed.failed)
app.command("retry", rich_help_panel=FAILED)(failed.retry)
app.command("forget", rich_help_panel=FAILED)(failed.forget)
app.command("flush", rich_help_panel=FAILED)(failed.flush)
app.command("prune-failed", rich_help_panel=FAILED)(failed.prune_failed)
app.command("batches", rich_help_panel=BATCHES)(batches.batches)
app.command("retry-batch", rich_help_panel=BATCHES)(batches.retry_batch)
app.command("prune-batches", rich_help_panel=BATCHES)(batches.prune_batches)
app.command("clear", rich_help_panel=QUEUES)(inspect.clear)
app.command("demo", rich_help_panel=SETUP)(demo.demo)
app.command("migrate", rich_help_panel=SETUP)(make.migrate)
app.command("make:job", rich_help_panel=SETUP)(make.make_job)
app.command("make:queue-table", rich_help_panel=SETUP)(make.make_queue_table)
app.command("make:failed-table", rich_help_panel=SETUP)(make.make_failed_table)
app.command("make:batches-table", rich_help_panel=SETUP)(make.make_batches_table)
app.command("key:generate", rich_help_panel=SETUP)(make.key_generate)


def run(args: list[str]) -> int:
    """Run the CLI; qctl errors become one line and an exit status, never a traceback (unless -v)."""
    verbose = "-v" in args or "--verbose" in args
    try:
        typer.main.get_command(app).main(args, prog_name="qctl", standalone_mode=True)
    except SystemExit as exc:  # Typer's own exits: usage errors (2), typer.Exit(code)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except QctlError as exc:
        if verbose:
            traceback.print_exc()
        output.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0
