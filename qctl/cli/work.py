"""`qctl work`: run a worker and render its events."""

from __future__ import annotations

import datetime as dt
import logging
import time

import typer

from qctl.cli import context, options, output
from qctl.events import (
    EventBus,
    JobFailed,
    JobProcessed,
    JobReleasedAfterException,
    WorkerNotice,
)
from qctl.failed.base import clean_text
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
    runtime = context.get(ctx).runtime
    runtime.import_app()
    render_worker_events(runtime.events, verbose)
    raise typer.Exit(runtime.worker(connection, worker).run())


def render_worker_events(events: EventBus, verbose: bool) -> None:
    """Failures and notices always; every job's outcome with -v (no per-job work otherwise)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    events.listen(WorkerNotice, lambda e: output.notice(f"{timestamp()} {e.message}"))
    events.listen(JobFailed, lambda e: output.line(_job_line(e.job, "FAIL", f"  {_first_line(e.exception)}")))
    if verbose:
        events.listen(JobProcessed, lambda e: output.line(_job_line(e.job, _done(e.job))))
        events.listen(JobReleasedAfterException, lambda e: output.line(_job_line(e.job, f"RETRY in {e.delay:g}s", f"  {_first_line(e.exception)}")))


def _done(job: object) -> str:
    """DONE, or what stopped a job its middleware never let reach handle() (it is deleted)."""
    return "DONE" if getattr(job, "handled", True) else "SKIPPED by middleware (deleted)"


def _job_line(job: object, outcome: str, detail: str = "") -> str:
    runtime_ms = (time.monotonic() - getattr(job, "started", time.monotonic())) * 1000
    return f"{timestamp()} {getattr(job, 'job_id', '?')} {getattr(job, 'display_name', '?')} {outcome} {runtime_ms:.1f}ms{detail}"


def _first_line(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = clean_text(f"{type(exc).__qualname__}: {exc}")  # lone surrogates must not reach stdout
    return text.splitlines()[0] if text else ""


def timestamp() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
