"""The only module that talks to the terminal through rich: tables, JSON, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr; the caller picks the exit status."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def info(message: str) -> None:
    out.print(message, markup=False, emoji=False)


def notice(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def line(text: str) -> None:
    """A plain line on stdout, flushed (worker output read by process managers)."""
    print(text, flush=True)


def show_json(rows: Sequence[dict[str, Any]]) -> None:
    print(json.dumps(list(rows), indent=2, default=str))


def show_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    if not rows:
        info(empty)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(table)
