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


def work(
    ctx: typer.Context,
    connection: options.Connection = None,
    queue: options.Queue = None,
    once: options.Once = False,
    stop_when_empty: options.StopWhenEmpty = False,
    max_jobs: options.MaxJobs = 0,
    max_time: options.MaxTime = 0,
    memory: options.Memory = 128,
    sleep: options.Sleep = 3.0,
    rest: options.Rest = 0.0,
    tries: options.Tries = 1,
    backoff: options.Backoff = "0",
    timeout: options.Timeout = 60.0,
    force: options.Force = False,
    name: options.Name = "default",
    verbose: options.Verbose = False,
) -> None:
    """Process jobs from the queues until stopped."""
    worker_options = options.worker_options(
        queue=queue, once=once, stop_when_empty=stop_when_empty, max_jobs=max_jobs, max_time=max_time,
        memory=memory, sleep=sleep, rest=rest, tries=tries, backoff=backoff, timeout=timeout, force=force, name=name,
    )
    runtime = context.get(ctx).runtime
    runtime.import_app()
    worker = runtime.worker(connection, worker_options)
    render_worker_events(runtime.events, verbose)
    raise typer.Exit(worker.run())


def render_worker_events(events: EventBus, verbose: bool) -> None:
    """Failures and notices always; every job's outcome with -v (no per-job work otherwise)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    events.listen(WorkerNotice, lambda e: output.notice(f"{_now()} {e.message}"))
    events.listen(JobFailed, lambda e: output.line(_job_line(e.job, "FAIL", f"  {_first_line(e.exception)}")))
    if verbose:
        events.listen(JobProcessed, lambda e: output.line(_job_line(e.job, "DONE")))
        events.listen(JobReleasedAfterException, lambda e: output.line(_job_line(e.job, f"RETRY in {e.delay:g}s", f"  {_first_line(e.exception)}")))


def _job_line(job: object, outcome: str, detail: str = "") -> str:
    runtime_ms = (time.monotonic() - getattr(job, "started", time.monotonic())) * 1000
    return f"{_now()} {getattr(job, 'job_id', '?')} {getattr(job, 'display_name', '?')} {outcome} {runtime_ms:.1f}ms{detail}"


def _first_line(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = f"{type(exc).__qualname__}: {exc}"
    return text.splitlines()[0] if text else ""


def _now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
