"""Write man/qctl.1 and man/qctl-<command>.1 from the CLI, and qctl/cli/root_help.txt (what
`qctl --help` prints without importing Typer); run after changing a command or option.

    python scripts/generate_man.py [DIRECTORY]    # default: man/ beside this script's folder
"""

from __future__ import annotations

import sys
from pathlib import Path

from qctl.cli import ROOT_HELP
from qctl.cli.app import HELP_WIDTH, command_tree, root_help
from qctl.cli.manpages import write_pages


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "man"
    for stale in target.glob("qctl*.1"):
        stale.unlink()
    written = write_pages(command_tree(), target)
    print(f"wrote {len(written)} man pages into {target}")
    Path(ROOT_HELP).write_text(root_help(HELP_WIDTH) + "\n", encoding="utf-8")
    print(f"wrote {ROOT_HELP}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
