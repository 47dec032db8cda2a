"""`qctl workers`: the running workers, from their heartbeats, with RSS, CPU and uptime (measured now for
local ones, as last reported for workers on other hosts)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import typer

from qctl.cli import context, options, output

if TYPE_CHECKING:
    from qctl.worker.heartbeat import WorkerRecord
    from qctl.worker.registry import WorkerView

COLUMNS = ["name", "pid", "host", "connection", "queues", "state", "job", "rss", "cpu", "uptime", "jobs done"]


def workers(ctx: typer.Context, json: options.Json = False) -> None:
    """List running workers: name, pid, host, connection, queues (paused ones marked), state, current job (each slot's with --concurrency), RSS, CPU, uptime, jobs done (--json: failed and released too)."""
    from qctl.worker.controls import paused_queues
    from qctl.worker.registry import running_workers

    cache = context.get(ctx).runtime.cache
    views = running_workers(cache)
    paused = {(p.connection, p.queue) for p in paused_queues(cache)}
    if json:
        output.show_json([worker_row(view, paused) for view in views])
        return
    output.show_table("Workers", COLUMNS, [table_row(view, paused) for view in views], "No running workers.")
    if paused:
        output.info("Paused queues: " + ", ".join(f"{c}:{q}" for c, q in sorted(paused)) + " (`qctl continue` resumes them).")


def paused_of(view: WorkerView, paused: set[tuple[str, str]]) -> list[str]:
    """The worker's queues that `qctl pause` holds back, in its priority order."""
    return [queue for queue in view.record.queues if (view.record.connection, queue) in paused]


def worker_row(view: WorkerView, paused: set[tuple[str, str]]) -> dict[str, Any]:
    record, facts = view.record, view.facts
    return {
        "name": record.name,
        "pid": record.pid,
        "host": record.host,
        "connection": record.connection,
        "queues": list(record.queues),
        "paused_queues": paused_of(view, paused),
        "state": record.state,
        "job_id": record.job_id,
        "job_class": record.job_class,
        "job_queue": record.job_queue,
        "job_started_at": _iso(record.job_started_at),
        "concurrency": record.concurrency,
        "jobs": [{**job, "job_started_at": _iso(job.get("job_started_at"))} for job in jobs_in_flight(record)],
        "jobs_done": record.jobs_done,
        "jobs_failed": record.jobs_failed,
        "jobs_released": record.jobs_released,
        "started_at": _iso(record.started_at),
        "heartbeat_at": _iso(record.heartbeat_at),
        "rss_mb": facts.rss_mb if facts else record.rss_mb,
        "cpu_percent": facts.cpu_percent if facts else record.cpu_percent,
        "uptime_seconds": facts.uptime_seconds if facts else round(time.time() - record.started_at, 1),
    }


def jobs_in_flight(record: WorkerRecord) -> list[dict[str, Any]]:
    """Every job the worker runs: its slots' list, or the one current job of a single-slot worker."""
    if record.concurrency > 1:
        return record.in_flight
    if record.job_id is None and record.job_class is None:
        return []
    return [{"job_id": record.job_id, "job_class": record.job_class, "job_queue": record.job_queue,
             "job_started_at": record.job_started_at}]


def table_row(view: WorkerView, paused: set[tuple[str, str]]) -> list[Any]:
    record, facts = view.record, view.facts
    job = _short_job(record.job_class, record.job_id)
    state = record.state
    if record.concurrency > 1:  # every slot's job, one per line, and how many slots are busy
        job = "\n".join(_short_job(one.get("job_class"), one.get("job_id")) for one in record.in_flight)
        state = f"{state} {len(record.in_flight)}/{record.concurrency}"
    rss_mb = facts.rss_mb if facts else record.rss_mb  # another host's worker: as it measured itself
    cpu_percent = facts.cpu_percent if facts else record.cpu_percent
    rss = "-" if rss_mb is None else f"{rss_mb:.0f} MB"
    cpu = "-" if cpu_percent is None else f"{cpu_percent:.0f}%"
    uptime = facts.uptime_seconds if facts else time.time() - record.started_at
    held = paused_of(view, paused)
    queues = ",".join(f"{queue} (paused)" if queue in held else queue for queue in record.queues)
    return [record.name, record.pid, record.host, record.connection, queues, state,
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
