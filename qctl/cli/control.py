"""Operator controls every worker sees through the cache store: restart, down, up."""

from __future__ import annotations

import datetime as dt

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


def _local_time(stamp: float | None) -> str:
    if not stamp:
        return "an unknown time"
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
