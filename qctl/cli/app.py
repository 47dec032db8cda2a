"""The root Typer app: global options, and the commands of `commands.COMMANDS`, each loaded when it is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from qctl.__about__ import __version__
from qctl.cli import hints, lines
from qctl.cli.commands import BY_NAME, COMMANDS, Entry
from qctl.cli.metavars import label
from qctl.errors import QctlError

__all__ = ["app", "command_tree", "root_help", "run"]


class LazyCommands(TyperGroup):
    """The root group: each command of `commands.COMMANDS` is imported when it runs, or when its own
    help is asked for; the listing in `qctl --help` comes from the table (commands registered on
    `app` directly are loaded as Typer always does)."""

    def list_commands(self, ctx: Any) -> list[str]:
        eager = super().list_commands(ctx)
        return [*eager, *(entry.name for entry in COMMANDS if entry.name not in eager)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in BY_NAME:
            self.commands[cmd_name] = build(BY_NAME[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        from typer._click.utils import make_default_short_help

        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is None:
                rows.append((name, make_default_short_help(BY_NAME[name].summary, limit)))
            elif not loaded.hidden:
                rows.append((name, loaded.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def load_all(self) -> LazyCommands:
        for name in self.list_commands(None):
            self.get_command(None, name)
        return self


def build(entry: Entry) -> Any:
    """The click command of one table entry (its module imported now), placeholders set."""
    function = getattr(importlib.import_module(f"qctl.cli.{entry.module}"), entry.function)
    single = typer.Typer(rich_markup_mode=None, add_completion=False)
    single.command(entry.name, rich_help_panel=entry.panel)(function)
    return label(typer.main.get_command(single))


app = typer.Typer(
    name="qctl",
    help="Background jobs and workers for Python, the way Laravel's queues work for PHP.",
    no_args_is_help=True,
    add_completion=True,
    cls=LazyCommands,
    rich_markup_mode=None,  # help text is literal: [tool.qctl] and [program:…] are text, not markup  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    context_settings={"help_option_names": ["--help", "-h"]},
)


def _version(value: bool) -> None:
    if value:
        lines.line(f"qctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", help="Config file (default: $QCTL_CONFIG, else qctl.toml or [tool.qctl] in pyproject.toml, here or in a parent).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    from qctl.cli.context import CliContext, put_cwd_on_path

    put_cwd_on_path()
    ctx.obj = CliContext(config_path=config)


def command_tree() -> Any:
    """The click command of the whole CLI, every command loaded and every value's placeholder set (what
    --help and man pages show)."""
    root = root_command()
    return label(root.load_all() if isinstance(root, LazyCommands) else root)


def root_command() -> Any:
    """The root group, its table commands not loaded yet."""
    return label(typer.main.get_command(app))


HELP_WIDTH = 78
"""The width Typer formats help to on a terminal of 80 columns or more (and when output is piped)."""


def root_help(width: int | None = None) -> str:
    """`qctl --help`: the root group's help, formatted without parsing anything (no command module
    and none of Typer's value machinery is loaded), to the terminal's width or `width` columns."""
    from typer import _click

    root = root_command()
    context = _click.Context(root, info_name="qctl", help_option_names=["--help", "-h"], terminal_width=width)
    return str(root.get_help(context))


def without_global_verbose(args: list[str], command_named: Callable[[str], Any]) -> list[str]:
    """`-v` works on every command (a traceback on error); a command without a -v of its own (one
    that prints each job) gets it taken out of its arguments."""
    name = next((arg for arg in args if not arg.startswith("-")), None)
    command = command_named(name) if name else None
    takes = command is not None and any("-v" in getattr(p, "opts", ()) for p in command.params)
    return args if takes else [arg for arg in args if arg not in ("-v", "--verbose")]


def run(args: list[str]) -> int:
    """Run the CLI; qctl errors become one line and an exit status, never a traceback (unless -v)."""
    verbose = "-v" in args or "--verbose" in args
    command = root_command()
    names = command.list_commands(None)
    if verbose:
        args = without_global_verbose(args, lambda name: command.get_command(None, name) if name in names else None)
    hint = hints.hint_for(args, names)
    if hint is not None:
        lines.error(hint)
        return 2
    try:
        command.main(args or ["--help"], prog_name="qctl", standalone_mode=True)  # bare `qctl`: help, exit 0
    except SystemExit as exc:  # Typer's own exits: usage errors (2), typer.Exit(code)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except QctlError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        lines.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0
