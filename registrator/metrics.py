"""Prometheus metrics and /healthz (SPEC §7), served on --metrics-addr when given.

A registry of our own (not the process-global one) so several daemons in one test process
never share counters. /healthz answers 200 only while the Docker event stream is connected and
the lease is alive; otherwise 503 with a one-line reason. Nothing here ever holds a secret."""

from __future__ import annotations

import time
from typing import Any

# Event -> store-write-acknowledged, from a few ms (the floor here) to seconds (outages).
LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                   5, 10)


class _Null:
    """Stands in for every metric when nobody can scrape them: prometheus_client is not even
    imported then (it holds ~4 MB of a daemon that runs on every host)."""

    def __call__(self, *_args: Any, **_kwargs: Any) -> _Null:
        return self

    def __getattr__(self, _name: str) -> _Null:
        return self


class Metrics:
    def __init__(self, enabled: bool = True) -> None:
        self._ttl = 0.0
        self._renewed_at = 0.0
        if enabled:
            self._create()
        else:
            null: Any = _Null()
            self.registry: Any = None
            for name in ("registrations", "deregistrations", "events", "store_errors",
                         "reconnects", "lease_renewals", "label_warnings", "services",
                         "containers", "write_failures", "lease_ttl", "latency"):
                setattr(self, name, null)

    def _create(self) -> None:
        from prometheus_client import (  # noqa: PLC0415 - only when metrics are served
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.registrations = Counter("registrator_registrations",
                                     "Service entries written that were not in the store",
                                     registry=r)
        self.deregistrations = Counter("registrator_deregistrations",
                                       "Service entries deleted", registry=r)
        self.events = Counter("registrator_docker_events", "Docker events received",
                              ["action"], registry=r)
        self.store_errors = Counter("registrator_store_errors", "Failed store operations",
                                    registry=r)
        self.reconnects = Counter("registrator_reconnects",
                                  "Reconnections after a broken session", ["target"], registry=r)
        self.lease_renewals = Counter("registrator_lease_renewals",
                                      "Successful lease keepalives", registry=r)
        self.label_warnings = Counter("registrator_label_warnings",
                                      "Warnings about container labels", registry=r)
        self.services = Gauge("registrator_services_registered",
                              "Service entries this host has in the store", registry=r)
        self.containers = Gauge("registrator_containers_seen",
                                "Running containers at the last full reconcile", registry=r)
        self.write_failures = Gauge("registrator_store_write_failures_consecutive",
                                    "Store write attempts failed in a row (0 once one works)",
                                    registry=r)
        self.lease_ttl = Gauge("registrator_lease_ttl_remaining_seconds",
                               "Seconds left on the lease since the last keepalive", registry=r)
        self.latency = Histogram("registrator_event_to_store_seconds",
                                 "Docker event time to store write acknowledged",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.lease_ttl.set_function(self._ttl_left)

    def lease_refreshed(self, ttl: float) -> None:
        self.lease_renewals.inc()
        self._ttl, self._renewed_at = ttl, time.monotonic()

    def lease_reset(self) -> None:
        self._ttl = 0.0

    def _ttl_left(self) -> float:
        return max(0.0, self._ttl - (time.monotonic() - self._renewed_at)) if self._ttl else 0.0
