"""`qctl monitor`: sizes and oldest waits of some queues, for cron; QueueBusy and LongWaitDetected to the app's listeners."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qctl.cli import context, options, output
from qctl.cli.status import wait_text

Queues = Annotated[str, typer.Argument(help="Queues to watch: CONNECTION:QUEUE[,CONNECTION:QUEUE…] (a bare QUEUE is on the default connection).", show_default=False)]
Max = Annotated[int, typer.Option("--max", callback=options.COUNT, help="Alert (and fire QueueBusy) when a queue holds more jobs than this.")]
MaxWait = Annotated[float | None, typer.Option("--max-wait", callback=options.SECONDS, help="Alert (and fire LongWaitDetected) when a queue's oldest ready job has waited longer than this many seconds.", show_default=False)]
FailOnAlert = Annotated[bool, typer.Option("--fail-on-alert", help="Exit 1 when a queue is over a limit (default: exit 0 whenever it ran).")]

COLUMNS = ["connection", "queue", "size", "oldest wait", "status"]


def monitor(ctx: typer.Context, queues: Queues, max: Max = 1000, max_wait: MaxWait = None,
            json: options.Json = False, fail_on_alert: FailOnAlert = False) -> None:
    """Show the size and oldest wait of queues and alert on those over --max / --max-wait (run it from cron)."""
    from qctl.monitoring import monitor as monitoring

    runtime = context.get(ctx).runtime
    targets = monitoring.parse_targets(queues, runtime.config)
    runtime.import_app()  # the app's modules register the listeners
    readings = monitoring.read(runtime, targets, monitoring.Limits(max, max_wait))
    if json:
        output.show_json([monitoring.reading_row(reading) for reading in readings])
    else:
        output.show_table("Queues", COLUMNS, [_cells(reading) for reading in readings], "No queues.")
    monitoring.alert(runtime.events, readings, _report_listener_error)
    for reading in readings:
        if reading.problem is not None:
            output.error(f"{reading.target.connection}:{reading.target.queue}: {reading.problem}")
    if any(reading.problem is not None for reading in readings):
        raise typer.Exit(1)
    if fail_on_alert and any(reading.status == "ALERT" for reading in readings):
        raise typer.Exit(1)


def _cells(reading: Any) -> list[Any]:
    sizes = reading.sizes
    return [reading.target.connection, reading.target.queue, "-" if sizes is None else sizes.size,
            "-" if sizes is None else wait_text(sizes.oldest_wait), reading.status]


def _report_listener_error(listener: Any, event: object, exc: Exception) -> None:
    name = f"{getattr(listener, '__module__', '?')}.{getattr(listener, '__qualname__', repr(listener))}"
    message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    output.error(f"listener {name} raised on {type(event).__name__}: {message}")
