"""`serve`'s /metrics: the copy (revision, entries, staleness) and the HTTP side (answers by
status, held requests). A registry of its own, not the daemon's."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from registrator.serve.state import ServeState


class ServeMetrics:
    def __init__(self, state: ServeState, held: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.held: Callable[[], int] = held

        def gauge(name: str, text: str, read: Callable[[], float]) -> None:
            Gauge(name, text, registry=self.registry).set_function(read)

        gauge("registrator_serve_revision", "Store revision of the served copy",
              lambda: float(state.current().revision))
        gauge("registrator_serve_services", "Service names in the copy",
              lambda: float(len(state.current().services)))
        gauge("registrator_serve_entries", "Service entries in the copy",
              lambda: float(sum(len(v) for v in state.current().services.values())))
        gauge("registrator_serve_hosts", "Host records in the copy",
              lambda: float(len(state.current().hosts)))
        gauge("registrator_serve_watching", "1 while the registry watch is open",
              lambda: float(state.follower.watching.is_set()))
        gauge("registrator_serve_stale_seconds",
              "Seconds the store has been unreachable (0 while the copy is current)",
              lambda: state.stale_for or 0.0)
        gauge("registrator_serve_held_requests", "Blocking reads and event streams held now",
              lambda: float(self.held()))
        self._answers = Counter("registrator_serve_http_responses",
                                "HTTP answers by status code", ["code"], registry=self.registry)

    def answered(self, status: int) -> None:
        self._answers.labels(code=str(status)).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
