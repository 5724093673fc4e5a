"""The HTTP side of metrics.py: /metrics and /healthz on --metrics-addr. A module of its own
so that a daemon without --metrics-addr never imports wsgiref and http.server (~1 MB)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from registrator.metrics import Metrics


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_: Any) -> None:
        return  # scrapes every few seconds are not worth a log line each


class MetricsServer:
    """/metrics and /healthz on one small WSGI server in a daemon thread."""

    def __init__(self, metrics: Metrics, address: tuple[str, int],
                 health: Callable[[], str | None]) -> None:
        from prometheus_client import make_wsgi_app  # noqa: PLC0415 - served only on request

        self._metrics_app = make_wsgi_app(metrics.registry)
        self._health = health
        self._server: WSGIServer = make_server(address[0], address[1], self._app,
                                               handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            problem = self._health()
            status = "200 OK" if problem is None else "503 Service Unavailable"
            body = (problem or "ok").encode() + b"\n"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
