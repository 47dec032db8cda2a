"""Plain lines for the terminal, without rich: what a worker prints, and every command's one-line error."""

from __future__ import annotations

import re
import sys

_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """Text from a payload or a store made safe for a terminal and a log line: control characters
    (escape sequences, carriage returns, line separators) and lone surrogates shown as escapes."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def printable_block(text: str) -> str:
    """Several lines from a store, each made printable (line breaks kept, nothing else let through)."""
    return "\n".join(printable(line) for line in text.splitlines())


def one_line(text: str) -> str:
    return printable(text).replace("\n", "\\n")


def error(message: str) -> None:
    """One line on stderr; the caller picks the exit status."""
    print(f"error: {printable(message)}", file=sys.stderr, flush=True)


def notice(message: str) -> None:
    print(one_line(message), file=sys.stderr, flush=True)


def line(text: str) -> None:
    """A plain line on stdout, flushed (worker output read by process managers); one line, always."""
    print(one_line(text), flush=True)
