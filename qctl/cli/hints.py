"""One-line hints for the command lines people bring from elsewhere, given before Click's generic error.

Laravel's reflexes (`queue:work`, `queue:failed-table`) and a global option typed after the
command (`qctl workers --config F`) would otherwise end in "No such command" / "No such option".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

LARAVEL_NAMES = {
    "queue:table": "make:queue-table",
    "queue:failed-table": "make:failed-table",
    "queue:batches-table": "make:batches-table",
    "queue:resume": "continue",
    "make:queue-batches-table": "make:batches-table",
    "make:queue-failed-table": "make:failed-table",
}
"""Laravel names that are not `queue:` + a qctl command."""

GLOBAL_WITH_VALUE = ("--config",)


def hint_for(args: Sequence[str], commands: Collection[str]) -> str | None:
    """A hint when `args` would fail for a reason with a well-known fix, else None."""
    at = command_index(args)
    if at is None:
        return None
    name = args[at]
    if name not in commands:
        suggestion = LARAVEL_NAMES.get(name) or (name.removeprefix("queue:") if name.startswith("queue:") else None)
        if suggestion in commands:
            return f"no command {name!r} (that is Laravel's name): did you mean `qctl {suggestion}`?"
        return None
    for later in args[at + 1:]:
        if later == "--":
            break
        option = later.split("=", 1)[0]
        if option in GLOBAL_WITH_VALUE:
            return (f"{option} is a global option: give it before the command, "
                    f"`qctl {option} FILE {name} …`")
    return None


def command_index(args: Sequence[str]) -> int | None:
    """Where the command name is: the first argument that is not a global option or its value."""
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return index
    return None
