"""`qctl workers`: the running workers, from their heartbeats, with RSS, CPU and uptime for local ones."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import typer

from qctl.cli import context, options, output

if TYPE_CHECKING:
    from qctl.worker.registry import WorkerView

COLUMNS = ["name", "pid", "host", "connection", "queues", "state", "job", "rss", "cpu", "uptime", "jobs done"]


def workers(ctx: typer.Context, json: options.Json = False) -> None:
    """List running workers: name, pid, host, connection, queues, state, current job, RSS, CPU, uptime, jobs done."""
    from qctl.worker.registry import running_workers

    views = running_workers(context.get(ctx).runtime.cache)
    if json:
        output.show_json([worker_row(view) for view in views])
        return
    output.show_table("Workers", COLUMNS, [table_row(view) for view in views], "No running workers.")


def worker_row(view: WorkerView) -> dict[str, Any]:
    record, facts = view.record, view.facts
    return {
        "name": record.name,
        "pid": record.pid,
        "host": record.host,
        "connection": record.connection,
        "queues": list(record.queues),
        "state": record.state,
        "job_id": record.job_id,
        "job_class": record.job_class,
        "job_queue": record.job_queue,
        "job_started_at": _iso(record.job_started_at),
        "jobs_done": record.jobs_done,
        "started_at": _iso(record.started_at),
        "heartbeat_at": _iso(record.heartbeat_at),
        "rss_mb": facts.rss_mb if facts else None,
        "cpu_percent": facts.cpu_percent if facts else None,
        "uptime_seconds": facts.uptime_seconds if facts else round(time.time() - record.started_at, 1),
    }


def table_row(view: WorkerView) -> list[Any]:
    record, facts = view.record, view.facts
    job = _short_job(record.job_class, record.job_id)
    rss = f"{facts.rss_mb:.0f} MB" if facts else "-"
    cpu = f"{facts.cpu_percent:.0f}%" if facts else "-"
    uptime = facts.uptime_seconds if facts else time.time() - record.started_at
    return [record.name, record.pid, record.host, record.connection, ",".join(record.queues), record.state,
            job, rss, cpu, _duration(uptime), record.jobs_done]


def _short_job(job_class: str | None, job_id: str | None) -> str:
    """`Sleep 9aaa5f9f`: the class without its module and the start of the uuid (--json has both in full)."""
    if not job_class and not job_id:
        return ""
    return " ".join(part for part in ((job_class or "?").rsplit(".", 1)[-1], (job_id or "")[:8]) if part)


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, dt.UTC).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
