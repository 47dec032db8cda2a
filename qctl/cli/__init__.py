"""The `qctl` command: a root Typer app that loads one module per command group when it is used.

`main()` maps qctl's errors to one line on stderr and an exit status (0 ok,
1 failed, 2 usage or config); a traceback appears only with -v. Three lines are answered
before the Typer app is built, because start-up is what they cost: `--version`, the root
`--help` (from the command table), and a plain `qctl work …` (see `work_run`).
"""

from __future__ import annotations

import os
import sys

from qctl.__about__ import __version__


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answered before importing Typer: `qctl --version` stays fast
        print(f"qctl {__version__}")
        sys.exit(0)
    if args in ([], ["--help"], ["-h"]) and not _completing():
        try:
            print(_root_help(), flush=True)
        except BrokenPipeError:  # `qctl --help | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    from qctl.cli.work_run import quick

    status = quick(args)  # a plain `qctl work` line starts without building the Typer app
    if status is None:
        from qctl.cli.app import run

        status = run(args)
    sys.exit(status)


ROOT_HELP = os.path.join(os.path.dirname(__file__), "root_help.txt")
"""`qctl --help` as Typer formats it for 80 columns or more, written by scripts/generate_man.py (a test keeps
it fresh), so the listing prints without importing Typer."""


def _root_help() -> str:
    import shutil

    if shutil.get_terminal_size().columns >= 80:  # what Typer would print: it wraps at 80 columns
        with open(ROOT_HELP, encoding="utf-8") as written:
            return written.read().rstrip("\n")
    from qctl.cli.app import root_help  # a narrower terminal: formatted to fit

    return root_help()


def _completing() -> bool:
    """Shell completion is running (Typer's `_QCTL_COMPLETE`): the Typer app answers it."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)
