"""Commands over the failed-job store."""

from __future__ import annotations

import typer

from qctl.cli import context, options, output
from qctl.errors import PayloadError
from qctl.failed.base import FailedJob
from qctl.payload.envelope import load_json_object


def failed(ctx: typer.Context, json: options.Json = False) -> None:
    """List failed jobs: id, connection, queue, class, failed at, error."""
    records = context.get(ctx).runtime.failed_store.all()
    show_failed(records, json)


def show_failed(records: list[FailedJob], as_json: bool) -> None:
    rows = [failed_row(r) for r in records]
    if as_json:
        output.show_json(rows)
        return
    columns = ["id", "connection", "queue", "class", "failed_at", "error"]
    output.show_table("Failed jobs", columns, [[row[c] for c in columns] for row in rows], "No failed jobs.")


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
