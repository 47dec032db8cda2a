"""`qctl metrics`: jobs processed, failed and released, runtime and wait, per queue and job class."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import typer

from qctl.cli import context, options, output
from qctl.errors import UsageError
from qctl.limits import MAX_SECONDS

Queue = Annotated[str | None, typer.Option("--queue", help="Only this queue.", show_default=False)]
JobClass = Annotated[str | None, typer.Option("--class", help="Only this job class (as `qctl failed` shows it).", show_default=False)]
Since = Annotated[str, typer.Option("--since", help="The window: 90s, 15m, 1h, 7d.")]
Prometheus = Annotated[bool, typer.Option("--prometheus", help="Print the Prometheus text format instead (queues, workers, job counters and histograms over every hour row kept; --since does not apply; needs qctl[prometheus]).")]

COLUMNS = ["connection", "queue", "class", "processed", "failed", "released", "runtime p50/p95/max", "wait p50/p95/max"]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def metrics(ctx: typer.Context, queue: Queue = None, job_class: JobClass = None, since: Since = "1h",
            json: options.Json = False, prometheus: Prometheus = False) -> None:
    """Show jobs processed, failed and released, with runtime and wait (p50, p95, max), per queue and job class."""
    from qctl.monitoring.metrics import Window, metrics_row, read_totals

    runtime = context.get(ctx).runtime
    if prometheus:
        if json:
            raise UsageError("--json and --prometheus: give one of them")
        from qctl.cli.prometheus import print_exposition

        print_exposition(runtime, queue, job_class)
        return
    window = Window(parse_since(since), time.time())
    found = read_totals(runtime.cache, runtime.config.metrics, window)
    rows = [metrics_row(series, totals) for series, totals in sorted(found.items())
            if (queue is None or series[1] == queue) and (job_class is None or series[2] == job_class)]
    if json:
        output.show_json(rows)
        return
    empty = "No job metrics in that window." if runtime.config.metrics.enabled else "Metrics are off ([metrics] enabled = false)."
    output.show_table(f"Jobs in the last {since}", COLUMNS, [_cells(row) for row in rows], empty)


def parse_since(text: str) -> float:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    seconds = float(found.group(1)) * UNITS[found.group(2) or "s"] if found else None
    if seconds is None or not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"--since: expected a duration like 90s, 15m, 1h or 7d, got {text!r}")
    return seconds


def _cells(row: dict[str, Any]) -> list[Any]:
    def trio(name: str) -> str:
        values = [row[f"{name}_{part}_seconds"] for part in ("p50", "p95", "max")]
        return "-" if values[0] is None else "/".join(_short(value) for value in values)

    return [row["connection"], row["queue"], row["class"], row["processed"], row["failed"], row["released"],
            trio("runtime"), trio("wait")]


def _short(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"
