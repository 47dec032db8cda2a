"""Commands over the failed-job store: list, retry, forget, flush, prune."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from qctl.bus.unique import MARKER
from qctl.cli import context, options, output
from qctl.errors import PayloadError, UsageError
from qctl.failed.base import FailedJob
from qctl.payload.envelope import load_json_object

Ids = Annotated[list[str] | None, typer.Argument(metavar="[ID]...|all", help="Failed job ids (the `id` column), or `all`.", show_default=False)]
RetryQueue = Annotated[str | None, typer.Option("--queue", help="Retry every failed job of this queue.")]
Range = Annotated[list[str] | None, typer.Option("--range", metavar="LOW-HIGH", help="Retry by row id: 1-5 (repeatable).")]
Hours = Annotated[float | None, typer.Option("--hours", min=0, help="Only those that failed more than this many hours ago.")]
PruneHours = Annotated[float, typer.Option("--hours", min=0, help="Delete failed jobs older than this many hours.")]


def failed(ctx: typer.Context, json: options.Json = False) -> None:
    """List failed jobs: id, connection, queue, class, failed at, error."""
    records = context.get(ctx).runtime.failed_store.all()
    show_failed(records, json)


def retry(ctx: typer.Context, ids: Ids = None, queue: RetryQueue = None, range_: Range = None) -> None:
    """Push failed jobs back onto their connection and queue (attempts start again), then forget them."""
    from qctl.bus.retry import select_failed

    runtime = context.get(ctx).runtime
    records = select_failed(runtime.failed_store, ids or [], queue, range_ or [])
    if not records:
        output.info("No failed jobs to retry.")
        return
    retried, problems = runtime.failed_job_retrier().retry(records)
    for done in retried:
        output.info(f"Retried {done.uuid} onto {done.connection}:{done.queue}.")
    for problem in problems:
        output.error(f"cannot retry {problem.uuid}: {problem.reason}")
    if problems:
        raise typer.Exit(1)


def forget(ctx: typer.Context, ids: Annotated[list[str], typer.Argument(help="Failed job ids.")]) -> None:
    """Delete failed jobs by id."""
    runtime = context.get(ctx).runtime
    store = runtime.failed_store
    records = {uuid: store.find(uuid) for uuid in ids}
    missing = [uuid for uuid, record in records.items() if record is None]
    if missing:
        raise UsageError(f"no failed job with id {', '.join(missing)} (see `qctl failed`); nothing was deleted")
    for uuid, record in records.items():
        store.forget(uuid)
        if record is not None and MARKER in record.payload:  # a lock a refused payload left behind
            runtime.unique_locks.release_payloads([record.payload])
        output.info(f"Deleted failed job {uuid}.")


def flush(ctx: typer.Context, hours: Hours = None) -> None:
    """Delete every failed job (or only those older than --hours)."""
    runtime = context.get(ctx).runtime
    deleted, unique = runtime.failed_store.flush_returning(hours, MARKER)
    runtime.unique_locks.release_payloads(unique)
    output.info(f"Deleted {deleted} failed job{'' if deleted == 1 else 's'}.")


def prune_failed(ctx: typer.Context, hours: PruneHours = 24) -> None:
    """Delete failed jobs older than --hours (default 24)."""
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=hours)
    pruned = context.get(ctx).runtime.failed_store.prune(before)
    output.info(f"Pruned {pruned} failed job{'' if pruned == 1 else 's'} older than {hours:g} hours.")


def show_failed(records: list[FailedJob], as_json: bool) -> None:
    rows = [failed_row(r) for r in records]
    if as_json:
        output.show_json(rows)
        return
    columns = ["id", "connection", "queue", "class", "failed_at", "error"]
    headers = [c.replace("_", " ") for c in columns]
    output.show_table("Failed jobs", headers, [[row[c] for c in columns] for row in rows], "No failed jobs.")


def failed_row(record: FailedJob) -> dict[str, object]:
    return {
        "id": record.uuid,
        "row_id": record.id,
        "connection": record.connection,
        "queue": record.queue,
        "class": job_class_of(record.payload),
        "failed_at": record.failed_at.isoformat(sep=" ", timespec="seconds"),
        "error": record.error_line,
    }


def job_class_of(payload: bytes) -> str:
    try:
        body = load_json_object(payload)
    except PayloadError:
        return "(unreadable payload)"
    name = body.get("displayName") or (body.get("data") or {}).get("commandName")
    return str(name) if name else "(unknown)"
