"""man/ holds a page for qctl and each command, generated from the CLI; this fails when they drift apart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qctl.cli.app import command_tree
from qctl.cli.manpages import all_pages, write_pages

MAN = Path(__file__).resolve().parents[2] / "man"
REGENERATE = "run `python scripts/generate_man.py` and commit man/"


def test_man_pages_are_up_to_date(tmp_path: Path) -> None:
    write_pages(command_tree(), tmp_path)
    fresh = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.1")}
    committed = {p.name: p.read_text(encoding="utf-8") for p in MAN.glob("*.1")}
    assert sorted(committed) == sorted(fresh), f"man pages missing or extra: {REGENERATE}"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], f"out of date: {', '.join(stale)}; {REGENERATE}"


def test_every_command_has_a_page_and_no_machine_paths() -> None:
    root = command_tree()
    pages = all_pages(root)
    assert "qctl.1" in pages and "qctl-supervisor-config.1" in pages
    assert len(pages) == 1 + len([c for c in root.commands.values() if not c.hidden])
    machine = {str(Path.home()), str(Path.cwd()), sys.prefix, str(Path(sys.executable).parent)}
    for name, text in pages.items():
        assert not any(path in text for path in machine if len(path) > 1), name


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_pages_render_without_roff_warnings() -> None:
    for page in sorted(MAN.glob("*.1")):
        result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True,
                                env={**os.environ, "LC_ALL": "C.UTF-8"})
        assert result.returncode == 0 and result.stderr == "", f"{page.name}: {result.stderr}"
