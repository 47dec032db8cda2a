"""Prometheus: `qctl serve-metrics` (a `/metrics` endpoint) and the exposition `qctl metrics
--prometheus` prints; both need the `qctl[prometheus]` extra."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from qctl.cli import context, options, output
from qctl.cli.status import Connections, Queues
from qctl.errors import ConfigError

if TYPE_CHECKING:
    from qctl.runtime import Runtime

EXTRA = "qctl[prometheus]"
Host = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 for every interface).")]
Port = Annotated[int, typer.Option("--port", callback=options.bounded(0, 65535, ""), help="Port to listen on (0: any free one, printed at start).")]


def serve_metrics(ctx: typer.Context, connections: Connections = None, queue: Queues = None,
                  host: Host = "127.0.0.1", port: Port = 9808) -> None:
    """Serve Prometheus metrics of the queues, workers and jobs on /metrics (and /healthz), read afresh on each scrape; job counters count from the start; Ctrl-C stops."""
    require_client("qctl serve-metrics")
    from qctl.monitoring.exporter import listen
    from qctl.monitoring.prometheus import QctlCollector, registry_of

    collector = QctlCollector(context.get(ctx).runtime, tuple(connections or ()), options.parse_queues(queue),
                              from_zero=True, on_problems=_report)
    collector.start()  # an unknown connection fails here, before the port is taken
    server = listen(registry_of(collector), host, port)
    output.line(f"Serving qctl metrics on http://{host}:{server.server_port}/metrics (and /healthz); Ctrl-C stops.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def print_exposition(runtime: Runtime, queue: str | None, job_class: str | None) -> None:
    """The text exposition format on stdout; the job counters are what the hour rows still hold."""
    require_client("qctl metrics --prometheus")
    from prometheus_client import generate_latest

    from qctl.monitoring.prometheus import QctlCollector, registry_of

    collector = QctlCollector(runtime, queues=(queue,) if queue else (), job_class=job_class)
    sys.stdout.write(generate_latest(registry_of(collector)).decode("utf-8"))
    sys.stdout.flush()
    for problem in collector.last_problems:
        output.error(problem)
    if collector.last_problems:
        raise typer.Exit(1)


def require_client(command: str) -> None:
    """One clear line naming the extra when `prometheus_client` is not installed."""
    import importlib.util

    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError(f"{command} needs the prometheus_client package: pip install '{EXTRA}'")


def _report(problems: list[str]) -> None:
    for problem in problems:
        output.error(problem)
    if not problems:
        output.notice("every store read again")
