"""PostgreSQL: prepared statements sent together, with a commit between them, in one round trip.

A batched job's success must be committed before the job's delete, and the delete rides with
the reserve of the next job (`DatabaseDriver.pop_after`). Sent as two statements that is two
round trips; sent as one statement (or one transaction) the batch row stays locked while the
next job is reserved, which serialises every worker on the batch. One simple-query message of
`BEGIN; EXECUTE guard(…); COMMIT; EXECUTE reserve(…)` does both in one round trip: the server
commits the guard before it runs the reserve, and skips the rest of the message when the guard
raises (its transaction is then rolled back, one more round trip on that rare path).

The statements are prepared once per connection (`PREPARE`), so the message is not planned
again on every job (planned each time, the reserve alone cost six times its prepared run).
Parameters travel as literals: integers and strings quoted here (psycopg's `mogrify` cost more
than the round trip it saves), anything else by psycopg's own client-side adaptation.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
BEGIN, COMMIT = "BEGIN", "COMMIT"


@dataclass(frozen=True)
class Prepared:
    """A statement in psycopg's `%(name)s` style, turned into a named server-side statement."""

    name: str
    sql: str
    """The statement with `$1`, `$2`… in place of the named parameters."""
    parameters: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> Prepared:
        names: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        body = PLACEHOLDER.sub(numbered, sql)
        # named by its text: two stores or tables never share a name, one statement is prepared once
        return cls("qctl_" + hashlib.sha1(body.encode("utf-8")).hexdigest()[:16], body, tuple(names))


@dataclass(frozen=True)
class SqlGuard:
    """A statement that must commit before a finished job may be deleted (see `AckGuard` for Redis).

    It raises `refusal` when it does not apply: the rest of the message is then skipped, the job
    stays reserved, and the worker settles it the long way.
    """

    statement: Prepared
    values: Mapping[str, Any]
    refusal: type[BaseException]


Step = tuple[Prepared, Mapping[str, Any]] | str


class PreparedTogether:
    """Runs steps in one message on a psycopg connection, preparing each statement on first use."""

    def __init__(self) -> None:
        self._connections: weakref.WeakKeyDictionary[Any, tuple[Any, set[str], bool]] = weakref.WeakKeyDictionary()

    def run(self, connection: Any, steps: Sequence[Step]) -> Any:
        """Send `steps`; return the client cursor on the first statement's result (`nextset()` walks on).

        On an error the message's explicit transaction is rolled back before the error is raised."""
        cursor, prepared, quoting = self._state(connection)
        for step in steps:
            if isinstance(step, tuple) and step[0].name not in prepared:
                cursor.execute(f"PREPARE {step[0].name} AS {step[0].sql}")
                prepared.add(step[0].name)
        try:
            cursor.execute("; ".join(render(cursor, step, quoting) for step in steps))
        except BaseException:
            from psycopg.pq import TransactionStatus

            if connection.info.transaction_status == TransactionStatus.INERROR:  # the message's BEGIN failed part-way
                cursor.execute("ROLLBACK")
            raise
        return cursor

    def _state(self, connection: Any) -> tuple[Any, set[str], bool]:
        found = self._connections.get(connection)
        if found is None:
            from psycopg import ClientCursor

            # with standard_conforming_strings (PostgreSQL's default since 9.1) a backslash is an
            # ordinary character in '…', so doubling quotes is the whole of quoting a string
            quoting = connection.info.parameter_status("standard_conforming_strings") == "on"
            found = self._connections[connection] = (ClientCursor(connection), set(), quoting)
        return found


def render(cursor: Any, step: Step, quoting: bool) -> str:
    if isinstance(step, str):
        return step
    statement, values = step
    if not statement.parameters:
        return f"EXECUTE {statement.name}"
    ordered = tuple(values[name] for name in statement.parameters)
    if quoting and all(type(value) in (int, str) for value in ordered):
        literals = ", ".join(str(value) if type(value) is int else quoted(value) for value in ordered)
    else:  # anything else is left to psycopg's own adaptation
        literals = cursor.mogrify(", ".join(["%s"] * len(ordered)), ordered)
    return f"EXECUTE {statement.name}({literals})"


def quoted(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a PostgreSQL string cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


__all__ = ["BEGIN", "COMMIT", "Prepared", "PreparedTogether", "SqlGuard", "Step"]
