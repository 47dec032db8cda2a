"""Write man/qctl.1 and man/qctl-<command>.1 from the CLI (run after changing a command or option).

    python scripts/generate_man.py [DIRECTORY]    # default: man/ beside this script's folder
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer.main

from qctl.cli.app import app
from qctl.cli.manpages import write_pages


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "man"
    for stale in target.glob("qctl*.1"):
        stale.unlink()
    written = write_pages(typer.main.get_command(app), target)
    print(f"wrote {len(written)} man pages into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
