"""`qctl listen`: like `work`, but picks up code changes without a manual restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from qctl.cli import context, options, output
from qctl.cli.work import timestamp
from qctl.errors import UsageError
from qctl.worker.options import WorkerOptions


@options.takes_worker_options
def listen(
    ctx: typer.Context,
    connection: options.Connection = None,
    watch: options.Watch = None,
    poll: options.Poll = 1.0,
    per_job: options.PerJob = False,
    verbose: options.Verbose = False,
    *,
    worker: WorkerOptions,
) -> None:
    """Process jobs like `work`, restarting the worker when a watched .py file changes.

    The current worker finishes its job first; the next job runs on the new code.
    """
    from qctl.worker.command import config_file_args, qctl_executable, work_command
    from qctl.worker.listener import Listener, ListenPlan, ends_by_itself
    from qctl.worker.watch import SourceWatcher, app_roots

    cli = context.get(ctx)
    config = cli.config  # a bad config is reported here, once, not by every child
    connection_name = config.connection(connection).name
    if per_job and ends_by_itself(worker):
        raise UsageError("--per-job runs one job per process until stopped; drop --once, --stop-when-empty, --max-jobs and --max-time")
    child_options = dataclasses.replace(worker, max_jobs=1) if per_job else worker
    command = work_command(qctl_executable(), config_file_args(cli.config_path), connection_name, child_options, verbose)
    watcher = SourceWatcher([Path.cwd(), *app_roots(config.app), *(watch or [])])
    output.notice(f"{timestamp()} listening on {connection_name!r}; watching {watcher.file_count} files under "
                  + ", ".join(str(root) for root in watcher.roots))
    plan = ListenPlan(tuple(command), finite=ends_by_itself(worker), per_job=per_job, poll=poll)
    raise typer.Exit(Listener(plan, watcher, lambda message: output.notice(f"{timestamp()} {message}")).run())
