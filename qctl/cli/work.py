"""`qctl work`: run a worker and render its events (the body is `work_run`, which runs without Typer)."""

from __future__ import annotations

import typer

from qctl.cli import context, options
from qctl.cli.work_run import run_worker
from qctl.cli.worker_log import utc_now
from qctl.worker.options import WorkerOptions


@options.takes_worker_options
def work(
    ctx: typer.Context,
    connection: options.Connection = None,
    verbose: options.Verbose = False,
    *,
    worker: WorkerOptions,
) -> None:
    """Process jobs from the queues until stopped."""
    raise typer.Exit(run_worker(context.get(ctx), connection, verbose, worker))


def timestamp() -> str:
    return utc_now()
