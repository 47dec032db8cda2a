"""Commands over the failed-job store: list, retry, forget, flush, prune."""

from __future__ import annotations

import datetime as dt
import json as json_module
import re
import sys
from typing import Annotated

import typer

from qctl.bus.unique import MARKER
from qctl.cli import context, options, output
from qctl.errors import NotFoundError, PayloadError, UsageError
from qctl.failed.base import FailedFilter, FailedJob, job_class_of, search
from qctl.limits import MAX_COUNT, MAX_SECONDS
from qctl.payload.envelope import load_json_object

Ids = Annotated[list[str] | None, typer.Argument(metavar="[ID]...|all", help="Failed job ids (the `id` column), or `all`.", show_default=False)]
RetryQueue = Annotated[str | None, typer.Option("--queue", help="Retry every failed job of this queue.")]
Range = Annotated[list[str] | None, typer.Option("--range", metavar="LOW-HIGH", help="Retry by row id: 1-5 (repeatable).")]
Hours = Annotated[float | None, typer.Option("--hours", callback=options.HOURS, help="Only those that failed more than this many hours ago.")]
PruneHours = Annotated[float, typer.Option("--hours", callback=options.HOURS, help="Delete failed jobs older than this many hours.")]


FailedId = Annotated[str | None, typer.Argument(metavar="[ID]", help="Show this failed job whole.", show_default=False)]
ListQueue = Annotated[str | None, typer.Option("--queue", help="Only failed jobs of this queue.")]
ListClass = Annotated[str | None, typer.Option("--class", metavar="CLASS", help="Only this job class (as listed, e.g. app.jobs.Ship).")]
Since = Annotated[str | None, typer.Option("--since", metavar="AGE", help="Only those that failed within AGE: 90s, 30m, 2h, 7d.")]
ListLimit = Annotated[int | None, typer.Option("--limit", callback=options.bounded(1, MAX_COUNT, ""), metavar="N",
                                               help="At most N, newest first (default on a terminal: 50; none with --json).")]
TERMINAL_LIMIT = 50
_AGE = re.compile(r"\A(\d+(?:\.\d+)?)([smhd])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def failed(ctx: typer.Context, failed_id: FailedId = None, queue: ListQueue = None, job_class: ListClass = None,
           since: Since = None, limit: ListLimit = None, json: options.Json = False) -> None:
    """List failed jobs (newest first: id, connection, queue, class, failed at, error), or show one whole."""
    context.note_if_unconfigured(ctx)
    store = context.get(ctx).runtime.failed_store
    if failed_id is not None:
        record = store.find(failed_id)
        if record is None:
            raise NotFoundError(f"no failed job with id {failed_id} (see `qctl failed`)")
        show_one(record, json)
        return
    if limit is None and not json and sys.stdout.isatty():
        limit = TERMINAL_LIMIT
    wanted = FailedFilter(queue, job_class, _since(since), None if limit is None else limit + 1)
    records = search(store, wanted, job_class_of)
    more = limit is not None and len(records) > limit
    show_failed(records[:limit] if more else records, json)
    if more:
        output.notice(f"showing the newest {limit}; --limit N for more, --json for all")


def _since(text: str | None) -> dt.datetime | None:
    """`--since 2h` → the naive-UTC moment two hours ago (failed_at is stored as naive UTC)."""
    if text is None:
        return None
    found = _AGE.match(text.strip())
    seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2)] if found else -1.0
    if not 0 <= seconds <= MAX_SECONDS:
        raise UsageError(f"--since: expected an age like 90s, 30m, 2h or 7d (at most ten years), got {text!r}")
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=seconds)


def show_one(record: FailedJob, as_json: bool) -> None:
    """One failed job whole: where it ran, when it failed, the exception with its traceback, the payload."""
    row = failed_row(record)
    body = payload_body(record.payload)
    if as_json:
        output.show_json([{**row, "exception": record.exception, "payload": body if body is not None else
                           record.payload.decode("utf-8", "replace")}])
        return
    for name in ("id", "row_id", "connection", "queue", "class", "failed_at"):
        output.info(f"{name.replace('_', ' ') + ':':<12} {output.printable(str(row[name]))}")
    output.info("\nexception:")
    output.info(output.printable_block(record.exception))
    output.info("\npayload:")
    shown = json_module.dumps(body, indent=2, ensure_ascii=False) if body is not None else record.payload.decode("utf-8", "replace")
    output.info(output.printable_block(shown))


def payload_body(payload: bytes) -> object | None:
    try:
        return load_json_object(payload)
    except PayloadError:
        return None


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
        raise NotFoundError(f"no failed job with id {', '.join(missing)} (see `qctl failed`); nothing was deleted")
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
        "failed_at": iso_utc(record.failed_at),
        "error": record.error_line,
    }


def iso_utc(stamp: dt.datetime) -> str:
    """ISO-8601 with its offset (the store keeps naive UTC): 2026-12-03T07:30:00+00:00."""
    aware = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat(timespec="seconds")
