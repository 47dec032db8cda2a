"""`qctl status`: every queue's jobs by state, failed jobs and oldest wait; the workers; the batches in progress."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qctl.cli import context, options, output
from qctl.cli.workers import worker_row

if TYPE_CHECKING:
    from qctl.monitoring.status import QueueStatus, Status
    from qctl.worker.heartbeat import WorkerRecord

Connections = Annotated[list[str] | None, typer.Argument(help="Connections to show (default: the default one and every one the config declares).", show_default=False)]
Queues = Annotated[str | None, typer.Option("--queue", help="Only these queues, comma-separated (default: the connection's, the workers' and those holding jobs).", show_default=False)]

QUEUE_COLUMNS = ["connection", "queue", "ready", "delayed", "reserved", "done 1h", "failed", "failed 1h", "oldest wait",
                 "workers"]
WORKER_COLUMNS = ["name", "host", "pid", "connection", "queues", "state", "job", "jobs done", "up"]
BATCH_COLUMNS = ["id", "name", "progress", "total", "pending", "failed", "created"]


def status(ctx: typer.Context, connections: Connections = None, queue: Queues = None, json: options.Json = False) -> None:
    """Show every queue (ready, delayed, reserved, failed, oldest wait, workers), the workers and the batches in progress."""
    from qctl.monitoring.status import gather

    found = gather(context.get(ctx).runtime, connections or (), options.parse_queues(queue))
    if json:
        output.show_json(json_rows(found))
    else:
        show_tables(found)
    for problem in found.problems:
        output.error(problem)
    if found.problems:
        raise typer.Exit(1)


def json_rows(found: Status) -> list[dict[str, Any]]:
    from qctl.monitoring.status import queue_row
    from qctl.worker.registry import WorkerView

    rows = [queue_row(item) for item in found.queues]
    rows += [{"type": "worker", **worker_row(WorkerView(record, None), set())} for record in found.workers]
    rows += [{"type": "batch", **batch.to_dict()} for batch in found.batches]
    return rows


def show_tables(found: Status) -> None:
    output.show_table("Queues", QUEUE_COLUMNS, [queue_cells(item) for item in found.queues], "No queues.")
    output.show_table("Workers", WORKER_COLUMNS, [worker_cells(record) for record in found.workers], "No running workers.")
    output.show_table("Batches in progress", BATCH_COLUMNS, [
        [b.id, b.name or "-", f"{b.progress()}%", b.total_jobs, b.pending_jobs, b.failed_jobs, ago(b.created_at.timestamp())]
        for b in found.batches
    ], "No batches in progress.")


def queue_cells(item: QueueStatus) -> list[Any]:
    sizes = item.sizes
    done = "-" if item.processed is None else item.processed.last_hour
    return [item.connection, item.queue, sizes.ready, sizes.delayed, sizes.reserved, done, item.failed.total,
            item.failed.last_hour, wait_text(sizes.oldest_wait), item.workers]


def worker_cells(record: WorkerRecord) -> list[Any]:
    job = " ".join(p for p in ((record.job_class or "").rsplit(".", 1)[-1], (record.job_id or "")[:8]) if p)
    return [record.name, record.host, record.pid, record.connection, ",".join(record.queues), record.state, job,
            record.jobs_done, duration(time.time() - record.started_at)]


def wait_text(seconds: float | None) -> str:
    return "-" if seconds is None else duration(seconds)


def ago(stamp: float) -> str:
    return f"{duration(time.time() - stamp)} ago"


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h`: short, and wide enough for a queue stuck for days."""
    whole = int(max(0, seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
