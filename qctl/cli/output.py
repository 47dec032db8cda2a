"""The only module that talks to the terminal through rich: tables, JSON, one-line errors (the plain
lines come from `lines`, which a worker imports without rich)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qctl.cli.lines import error, line, notice, printable, printable_block

__all__ = ["error", "info", "line", "notice", "printable", "printable_block", "show_json", "show_table"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    out.print(message, markup=False, emoji=False)


def show_json(rows: Sequence[dict[str, Any]]) -> None:
    print(json.dumps(list(rows), indent=2, default=str))


def show_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    if not rows:
        info(empty)
        return
    cells = [[Text("" if cell is None else printable(str(cell))) for cell in row] for row in rows]  # literal, no markup
    table = Table(title=Text(title), title_justify="left")
    for n, column in enumerate(columns):
        if column in WHOLE_COLUMNS:  # an id folded over lines cannot be copied: it keeps its width
            widest = max([len(column), *(cell_len(row[n].plain) for row in cells)])
            table.add_column(Text(column), no_wrap=True, min_width=widest)
        else:
            table.add_column(Text(column), overflow="fold")
    for row in cells:
        table.add_row(*row)
    if out.is_terminal:
        out.print(table)
        return
    # a pipe or a file gets every column whole: there is no terminal width to fit
    Console(width=max(out.width, _natural_width(table)), highlight=False, soft_wrap=True).print(table)


WHOLE_COLUMNS = frozenset({"id", "uuid", "pid", "row id", "job id", "job", "name", "host"})
"""Columns whose cells are copied into other commands (`qctl retry ID`, `kill PID`): never folded."""


def _natural_width(table: Table) -> int:
    """The width the table takes with no cell wrapped."""
    wide = Console(width=100_000, file=open(os.devnull, "w"), highlight=False)  # noqa: SIM115 (closed with the console)
    try:
        return int(wide.measure(table).maximum)
    finally:
        wide.file.close()
