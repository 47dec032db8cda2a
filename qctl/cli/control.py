"""Operator controls every worker sees through the cache store: restart, down, up, pause, continue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from qctl.cli import context, output


def restart(ctx: typer.Context) -> None:
    """Make every running worker exit (status 0) after its current job; its process manager starts a fresh one."""
    from qctl.worker.controls import request_restart

    request_restart(context.get(ctx).runtime.cache)
    output.info("Restart requested: every worker exits after its current job (within about a second when idle).")


def down(ctx: typer.Context) -> None:
    """Maintenance mode: workers take no jobs (except those started with --force) until `qctl up`."""
    from qctl.worker.controls import enter_maintenance, maintenance_since

    cache = context.get(ctx).runtime.cache
    if enter_maintenance(cache):
        output.info("Workers are down: they finish their current job and take no more until `qctl up`.")
        return
    since = maintenance_since(cache)
    output.info(f"Workers were already down (since {_local_time(since)}).")


def up(ctx: typer.Context) -> None:
    """Leave maintenance mode: workers take jobs again."""
    from qctl.worker.controls import leave_maintenance

    if leave_maintenance(context.get(ctx).runtime.cache):
        output.info("Workers are up: they take jobs again.")
    else:
        output.info("Workers were not down.")


QueueTargets = Annotated[list[str], typer.Argument(
    metavar="CONNECTION:QUEUE...", show_default=False,
    help="Queues as connection:queue, like database:emails (a bare connection name: its default queue).")]


def pause(ctx: typer.Context, targets: QueueTargets) -> None:
    """Pause queues: workers finish the job in hand, then take no jobs from them (but keep working their other queues) until `qctl continue`."""
    from qctl.worker.controls import pause_queue, paused_since, queue_targets

    cli = context.get(ctx)
    chosen = queue_targets(cli.config, targets, "pause")
    cache = cli.runtime.cache
    for connection, queue in chosen:
        name = f"{connection}:{queue}"
        if pause_queue(cache, connection, queue):
            output.info(f"Paused {name}: workers take no more jobs from it until `qctl continue {name}`.")
        else:
            output.info(f"{name} was already paused (since {_local_time(paused_since(cache, connection, queue))}).")


def continue_(ctx: typer.Context, targets: QueueTargets) -> None:
    """Continue paused queues: workers take their jobs again (within about a second)."""
    from qctl.worker.controls import continue_queue, queue_targets

    cli = context.get(ctx)
    chosen = queue_targets(cli.config, targets, "continue")
    cache = cli.runtime.cache
    for connection, queue in chosen:
        if continue_queue(cache, connection, queue):
            output.info(f"Continued {connection}:{queue}: workers take its jobs again.")
        else:
            output.info(f"{connection}:{queue} was not paused.")


def _local_time(stamp: float | None) -> str:
    if not stamp:
        return "an unknown time"
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
