"""`qctl top`: a live full-screen view of the queues, workers, recent failures and batches in progress."""

from __future__ import annotations

from typing import Annotated

import typer

from qctl.cli import context, options
from qctl.cli.status import Connections, Queues
from qctl.errors import UsageError

Once = Annotated[bool, typer.Option("--once", help="Print one frame and exit (for scripts: no screen, every row).")]


def top(ctx: typer.Context, connections: Connections = None, queue: Queues = None, once: Once = False) -> None:
    """Watch queues (sizes, oldest wait, jobs done per minute), workers (state, job, RSS, CPU), recent failures and batches, redrawn every second; q or Ctrl-C quits."""
    from qctl.cli import dashboard, keys, output
    from qctl.monitoring.top import Watch

    runtime = context.get(ctx).runtime
    names, queues = tuple(connections or ()), options.parse_queues(queue)
    watch = Watch(runtime, names, queues)
    first = watch.take()  # bad input fails here, before the screen is taken over
    if once:
        dashboard.show_once(first)
        for problem in first.problems:
            output.error(problem)
        if first.problems:
            raise typer.Exit(1)
        return
    if not output.out.is_terminal:
        raise UsageError("qctl top draws on a terminal; --once prints one frame")
    try:
        with keys.keys() as wait_for_key:
            dashboard.show_live(watch.take, wait_for_key, first)
    except KeyboardInterrupt:  # Ctrl-C is how many people leave a top: a normal exit
        return
