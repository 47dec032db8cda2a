"""The root group loads a command's module only when it is used: its table (qctl/cli/commands.py)
must list every command with the line its docstring gives, and shell completion still sees them all."""

from __future__ import annotations

import subprocess
import sys

from qctl.cli import ROOT_HELP
from qctl.cli.app import HELP_WIDTH, command_tree, root_help
from qctl.cli.commands import COMMANDS
from tests.support.processes import qctl_env


def first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n")[0].split())


def test_every_listed_line_is_the_first_paragraph_of_its_command_help() -> None:
    loaded = command_tree().commands
    assert [entry.name for entry in COMMANDS] == list(loaded)
    for entry in COMMANDS:
        assert entry.summary == first_paragraph(loaded[entry.name].help or ""), entry.name
        assert loaded[entry.name].rich_help_panel == entry.panel


def test_help_from_the_table_is_the_help_of_the_loaded_commands() -> None:
    from typer import _click

    root = command_tree()
    loaded_help = root.get_help(_click.Context(root, info_name="qctl", help_option_names=["--help", "-h"]))
    assert root_help() == loaded_help
    assert all(f"  {entry.name} " in loaded_help for entry in COMMANDS)


def test_shell_completion_offers_commands_and_their_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def complete(words: str) -> list[str]:
        env = qctl_env({"_QCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)})
        done = subprocess.run([sys.executable, "-m", "qctl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("qctl wor") == ["work", "workers"]
    assert complete("qctl work --max") == ["--max-jobs", "--max-time"]
    assert "prune-failed" in complete("qctl pr")


def test_the_written_root_help_is_what_typer_prints(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """qctl/cli/root_help.txt is printed by `qctl --help` without Typer; scripts/generate_man.py writes it."""
    with open(ROOT_HELP, encoding="utf-8") as written:
        assert written.read() == root_help(HELP_WIDTH) + "\n", "run `python scripts/generate_man.py` and commit it"
    typer_printed = subprocess.run([sys.executable, "-m", "qctl", "--config", "none.toml", "--help"], cwd=tmp_path,
                                   env=qctl_env({"COLUMNS": "120"}), capture_output=True, text=True, timeout=60)
    assert typer_printed.returncode == 0 and typer_printed.stdout == root_help(HELP_WIDTH) + "\n"
    narrow = subprocess.run([sys.executable, "-m", "qctl", "--help"], cwd=tmp_path, env=qctl_env({"COLUMNS": "60"}),
                            capture_output=True, text=True, timeout=60)
    assert narrow.returncode == 0 and max(len(line) for line in narrow.stdout.splitlines()) <= 60
