"""The placeholders `--help` and the man pages show for values: NAME, ID…, SECONDS, N — one rule for
both, and none on a flag (`--force`, not `--force <bool>`)."""

from __future__ import annotations

from typing import Any

_BY_NAME = {
    "name": "NAME", "connection": "CONNECTION", "connections": "CONNECTION", "program": "NAME", "user": "USER",
    "queue": "QUEUES", "queues": "QUEUES", "backoff": "SECONDS", "hours": "HOURS", "unfinished": "HOURS",
    "cancelled": "HOURS", "range_": "LOW-HIGH", "ids": "ID", "batch_id": "BATCH_ID", "failed_id": "ID",
    "config": "FILE", "log": "FILE", "output": "FILE", "path": "DIR", "watch": "PATH",
}
_BY_TYPE = {"float": "SECONDS", "int": "N", "str": "TEXT", "Path": "PATH"}


def placeholder(param: Any) -> str:
    """The placeholder of one option or argument (empty for a flag)."""
    if getattr(param, "is_flag", False):
        return ""
    if param.metavar:
        return str(param.metavar)
    found = _BY_NAME.get(param.name or "")
    if found is None:
        bare = getattr(param, "bare_type", None)
        kind = str(bare()) if callable(bare) else ""
        found = _BY_TYPE.get(kind.removeprefix("list[").removesuffix("]"), "VALUE")
    many = param.nargs != 1 or getattr(param, "multiple", False)
    return found + ("…" if many and param.param_type_name == "argument" else "")


def label(command: Any) -> Any:
    """Give every option and argument of `command` (and its subcommands) its placeholder, in place."""
    for param in getattr(command, "params", []):
        param.metavar = "" if getattr(param, "is_flag", False) else placeholder(param)
        if param.param_type_name == "argument":  # its name column already says what it is (CONNECTION)
            param.display_type_rich = _no_type
    help_option = _help_option(command)
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        label(sub)
    return command


def _no_type(ctx: Any) -> str:
    return ""


def _help_option(command: Any) -> Any:
    """The command's --help option (click makes it on demand and keeps it: made here, it is labelled)."""
    from typer import _click

    if not hasattr(command, "get_help_option"):
        return None
    return command.get_help_option(_click.Context(command, help_option_names=["--help", "-h"]))
