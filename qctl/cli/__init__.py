"""The `qctl` command: a root Typer app that attaches one module per command group.

`main()` maps qctl's errors to one line on stderr and an exit status (0 ok,
1 failed, 2 usage or config); a traceback appears only with -v.
"""

from __future__ import annotations

import sys

from qctl.__about__ import __version__


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:  # answered before importing Typer: `qctl --version` stays fast
        print(f"qctl {__version__}")
        sys.exit(0)
    from qctl.cli.app import run

    sys.exit(run(args))
