"""`qctl demo`: dispatch example jobs onto the embedded default and drain them with a progress bar."""

from __future__ import annotations

from typing import Annotated

import typer

from qctl.cli import context, output

DEMO_QUEUE = "qctl-demo"


def demo(
    ctx: typer.Context,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="How many example jobs to dispatch.")] = 300,
) -> None:
    """Dispatch example jobs (a couple fail on purpose), work them off, show the failed ones."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from qctl.cli.failed import show_failed
    from qctl.demo import demo_jobs
    from qctl.events import JobFailed, JobProcessed
    from qctl.worker.options import WorkerOptions

    cli = context.get(ctx)
    cli.extra_app = ("qctl.demo",)
    runtime = cli.runtime
    ids = {job.on_connection("database").on_queue(DEMO_QUEUE).dispatch() for job in demo_jobs(jobs)}
    output.info(f"Dispatched {len(ids)} jobs onto the 'database' connection, queue {DEMO_QUEUE!r}.")
    options = WorkerOptions(name="demo", queues=(DEMO_QUEUE,), stop_when_empty=True, sleep=0.05, tries=1, timeout=30)
    worker = runtime.worker("database", options)
    with Progress(TextColumn("working"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=output.out) as bar:
        task = bar.add_task("jobs", total=len(ids))
        runtime.events.listen(JobProcessed, lambda e: bar.advance(task))
        runtime.events.listen(JobFailed, lambda e: bar.advance(task))
        status = worker.run()
    failures = [record for record in runtime.failed_store.all() if record.uuid in ids]
    output.info(f"Done: {len(ids) - len(failures)} jobs succeeded, {len(failures)} failed.")
    show_failed(failures, as_json=False)
    raise typer.Exit(status)
