"""Commands over the batch store: list batches, retry a batch's failed jobs, prune old batches."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qctl.cli import context, options, output
from qctl.errors import NotFoundError

if TYPE_CHECKING:
    from qctl.bus.batch import Batch

BatchId = Annotated[str, typer.Argument(help="A batch id (see `qctl batches`).", show_default=False)]
MaybeBatchId = Annotated[str | None, typer.Argument(help="Show this batch whole, with its failed job ids.", show_default=False)]
Unfinished = Annotated[bool, typer.Option("--unfinished", help="Only batches that have not finished.")]
Limit = Annotated[int, typer.Option("--limit", callback=options.AT_LEAST_ONE, help="At most this many batches, newest first.")]
Hours = Annotated[float, typer.Option("--hours", callback=options.HOURS, help="Delete finished batches older than this many hours.")]
UnfinishedHours = Annotated[float | None, typer.Option("--unfinished", callback=options.HOURS, help="Also delete unfinished batches created more than this many hours ago.", show_default=False)]
CancelledHours = Annotated[float | None, typer.Option("--cancelled", callback=options.HOURS, help="Also delete cancelled batches created more than this many hours ago.", show_default=False)]

COLUMNS = ["id", "name", "progress", "total", "pending", "failed", "created", "finished"]


def batches(ctx: typer.Context, batch_id: MaybeBatchId = None, unfinished: Unfinished = False, limit: Limit = 50,
            json: options.Json = False) -> None:
    """List batches with their progress (newest first), or one batch with its failed job ids."""
    context.note_if_unconfigured(ctx)
    service = context.get(ctx).runtime.batches
    if batch_id is not None:
        show_one(service.find(batch_id) or _unknown(batch_id), json)
        return
    found = service.recent(limit, unfinished)
    if json:
        output.show_json([batch.to_dict() for batch in found])
        return
    output.show_table("Batches", COLUMNS, [table_row(batch) for batch in found], "No batches.")


def show_one(batch: Batch, as_json: bool) -> None:
    if as_json:
        output.show_json([batch.to_dict()])
        return
    row = batch.to_dict()
    for key in ("id", "name", "progress", "total_jobs", "pending_jobs", "processed_jobs", "failed_jobs",
                "created_at", "cancelled_at", "finished_at"):
        value = f"{row[key]}%" if key == "progress" else row[key]
        output.info(f"{key.replace('_', ' ')}: {'-' if value is None else value}")
    output.info("failed job ids:" + ("" if batch.failed_job_ids else " none"))
    for uuid in batch.failed_job_ids:
        output.info(f"  {uuid}")


def table_row(batch: Batch) -> list[Any]:
    done = batch.cancelled_at or batch.finished_at
    state = ("cancelled " if batch.cancelled() else "") + _stamp(done) if done else "-"
    return [batch.id, batch.name or "-", f"{batch.progress()}%", batch.total_jobs, batch.pending_jobs,
            batch.failed_jobs, _stamp(batch.created_at), state]


def retry_batch(ctx: typer.Context, batch_id: BatchId) -> None:
    """Push the failed jobs of a batch back onto their queues (as `qctl retry` does)."""
    runtime = context.get(ctx).runtime
    batch = runtime.batches.find(batch_id) or _unknown(batch_id)
    retried, problems = runtime.batches.retry_failed(batch, runtime.failed_job_retrier())
    if not retried and not problems:
        output.info(f"Batch {batch.id} has no failed jobs to retry.")
    for done in retried:
        output.info(f"Retried {done.uuid} onto {done.connection}:{done.queue}.")
    for problem in problems:
        output.error(f"cannot retry {problem.uuid}: {problem.reason}")
    if problems:
        raise typer.Exit(1)


def prune_batches(ctx: typer.Context, hours: Hours = 24, unfinished: UnfinishedHours = None,
                  cancelled: CancelledHours = None) -> None:
    """Delete finished batches older than --hours (default 24); with --unfinished / --cancelled, those too."""
    store = context.get(ctx).runtime.batches.store
    now = time.time()

    def before(hours_ago: float) -> int:  # whole seconds, rounded up: "older than 0 hours" is everything so far
        return math.ceil(now - hours_ago * 3600)

    pruned = store.prune_finished(before(hours))
    if unfinished is not None:
        pruned += store.prune_unfinished(before(unfinished))
    if cancelled is not None:
        pruned += store.prune_cancelled(before(cancelled))
    output.info(f"Pruned {pruned} batch{'' if pruned == 1 else 'es'}.")


def _unknown(batch_id: str) -> Any:
    raise NotFoundError(f"no batch with id {batch_id!r} (see `qctl batches`)")


def _stamp(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"
