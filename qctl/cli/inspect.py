"""Commands that look at or empty queues: clear."""

from __future__ import annotations

from typing import Annotated

import typer

from qctl.bus.unique import MARKER
from qctl.cli import context, options, output
from qctl.drivers.base import ClearsReturning


def clear(
    ctx: typer.Context,
    connection: options.Connection = None,
    queue: Annotated[str | None, typer.Option("--queue", help="Queue to clear (default: the connection's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every pending job of a queue."""
    runtime = context.get(ctx).runtime
    driver = runtime.connections.get(connection)
    name = queue or driver.default_queue
    empty = f"Queue {name!r} on {driver.connection_name!r} holds no jobs: nothing to clear."
    if not force:
        if driver.size(name) == 0:  # nothing to ask about
            output.info(empty)
            return
        if not typer.confirm(f"Delete every job of queue {name!r} on {driver.connection_name!r}?"):
            raise typer.Exit(1)
    if not isinstance(driver, ClearsReturning):
        count = driver.clear(name)
        output.info(empty if count == 0 else f"Cleared {count} jobs from queue {name!r} on {driver.connection_name!r}.")
        return
    cleared = driver.clear_returning(name, MARKER)
    runtime.unique_locks.release_payloads(cleared.unique)
    if cleared.total == 0:
        output.info(empty)
        return
    output.info(f"Cleared {cleared.total} jobs from queue {name!r} on {driver.connection_name!r} "
                f"({cleared.ready} ready, {cleared.delayed} delayed, {cleared.reserved} reserved).")
