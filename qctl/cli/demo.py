"""`qctl demo`: dispatch example jobs onto the embedded default and drain them with a progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from qctl.cli import context, options, output
from qctl.limits import MAX_COUNT

if TYPE_CHECKING:
    from qctl.runtime import Runtime

DEMO_QUEUE = "qctl-demo"
AT_LEAST_TWO = options.bounded(2, MAX_COUNT, "")


def demo(
    ctx: typer.Context,
    jobs: Annotated[int, typer.Option("--jobs", callback=AT_LEAST_TWO, help="How many example jobs to dispatch (two of them fail).")] = 300,
    retried: Annotated[bool, typer.Option("--retried", help="Dispatch nothing: work off the demo jobs `qctl retry` pushed back.")] = False,
) -> None:
    """Dispatch example jobs (two fail on purpose), work them off, show the failed ones."""
    from qctl.demo import demo_jobs

    cli = context.get(ctx)
    cli.extra_app = ("qctl.demo",)
    runtime = cli.runtime
    if retried:
        total = runtime.connections.get("database").size(DEMO_QUEUE)
        output.info(f"Working off {total} jobs on the 'database' connection, queue {DEMO_QUEUE!r}.")
    else:
        total = len({job.on_connection("database").on_queue(DEMO_QUEUE).dispatch() for job in demo_jobs(jobs)})
        output.info(f"Dispatched {total} jobs onto the 'database' connection, queue {DEMO_QUEUE!r}.")
    status, succeeded, failed = work_off(runtime, total)
    output.info(f"Done: {succeeded} jobs succeeded, {len(failed)} failed.")
    if failed:
        from qctl.cli.failed import show_failed

        show_failed([record for record in runtime.failed_store.all() if record.uuid in failed], as_json=False)
        output.info("Retry them with `qctl retry all` (or their ids), then `qctl demo --retried` works them off.")
    raise typer.Exit(status)


def work_off(runtime: Runtime, total: int) -> tuple[int, int, set[str]]:
    """Drain the demo queue in this process: (exit status, jobs that succeeded, ids of those that failed)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from qctl.events import JobFailed, JobProcessed
    from qctl.worker.options import WorkerOptions

    options = WorkerOptions(name="demo", queues=(DEMO_QUEUE,), stop_when_empty=True, sleep=0.05, tries=1, timeout=30)
    worker = runtime.worker("database", options)
    succeeded: list[str] = []
    failed: set[str] = set()
    with Progress(TextColumn("working"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=output.out) as bar:
        task = bar.add_task("jobs", total=total)

        def done(event: JobProcessed) -> None:
            succeeded.append(event.job.job_id)
            bar.advance(task)

        def failing(event: JobFailed) -> None:
            failed.add(event.job.record_uuid)
            bar.advance(task)

        runtime.events.listen(JobProcessed, done)
        runtime.events.listen(JobFailed, failing)
        status = worker.run()
    return status, len(succeeded), failed
