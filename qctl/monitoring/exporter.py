"""The HTTP side of `qctl serve-metrics`: `/metrics` for a Prometheus scraper, `/healthz` for a
liveness probe, nothing else. Needs the `qctl[prometheus]` extra (see `qctl.monitoring.prometheus`).

Each request is served on its own thread, so a slow scrape never holds up `/healthz`; the
collector reads the stores during the scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from qctl.errors import UsageError

log = logging.getLogger("qctl.monitoring")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every 15 s is no news
        log.debug(format, *args)


def routes(registry: CollectorRegistry) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"qctl serve-metrics: /metrics or /healthz\n"]

    return app


def listen(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """A server bound to host:port (port 0: any free one); serve_forever() runs it."""
    try:
        return make_server(host, port, routes(registry), server_class=_Server, handler_class=_QuietHandler)
    except OSError as exc:  # a port in use or not ours to take, a host that is not here
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
