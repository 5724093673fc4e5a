"""One `serve` process: the watched copy, then HTTP (uvicorn, on the main thread), DNS and
--metrics-addr beside it; SIGTERM/SIGINT stop everything, exit 0. Read-only: nothing here
writes to the store."""

from __future__ import annotations

import logging
import resource
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import structlog
import uvicorn

from registrator.errors import ConfigError
from registrator.keys import KeySpace
from registrator.metrics_server import MetricsServer
from registrator.serve import limits
from registrator.serve.http import Options, build_app
from registrator.serve.metrics import ServeMetrics
from registrator.serve.pages import page_routes
from registrator.serve.state import ServeState
from registrator.stores.base import Store

log = structlog.get_logger("registrator.serve")


@dataclass(frozen=True)
class ServeSettings:
    http: tuple[str, int] | None
    dns: tuple[str, int] | None
    domain: str
    dns_ttl: float
    http_cert: str | None
    http_key: str | None
    show_config: bool
    stale_after: float
    metrics_addr: tuple[str, int] | None


def serve(store: Store, keys: KeySpace, settings: ServeSettings) -> None:
    _enough_files()
    state = ServeState(store, keys)
    dns = _dns_server(state, settings) if settings.dns is not None else None
    if dns is not None:
        _bind_dns(dns, settings)  # a taken port is one line and exit 2, before anything runs
    listener = _bind_http(settings.http) if settings.http is not None else None
    state.start()
    stopped = threading.Event()
    try:
        if dns is not None:
            dns.start()
        metrics = ServeMetrics(state)
        if dns is not None:
            _dns_metrics(metrics, dns)
        options = Options(prefix=keys.prefix, stale_after=settings.stale_after,
                          show_config=settings.show_config)
        app, api = build_app(state, options, metrics, page_routes)
        side = _metrics_server(settings.metrics_addr, metrics, api.health)
        try:
            if listener is not None:
                _run_http(app, settings, listener, api.wakeup.close)
            else:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: stopped.set())
                stopped.wait()
        finally:
            if side is not None:
                side.stop()
    finally:
        if dns is not None:
            dns.stop()
        state.stop()


def _enough_files() -> None:
    """Room for MAX_CONNECTIONS sockets: the soft limit raised up to the hard one (a common
    default soft limit of 1024 would make accept() fail long before the bound)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limits.MAX_CONNECTIONS + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def _dns_server(state: ServeState, settings: ServeSettings) -> Any:
    # Loaded only with --dns: the DNS library is no cost to an HTTP-only serve.
    from registrator.serve.dns import DnsServer  # noqa: PLC0415

    assert settings.dns is not None  # noqa: S101 - the caller checked
    host, port = settings.dns
    try:
        return DnsServer(current=state.current, subscribe=state.subscribe,
                         domain=settings.domain, ttl=settings.dns_ttl, host=host, port=port)
    except ValueError as exc:  # a domain dnspython refuses, a TTL out of range
        raise ConfigError(f"--dns: {exc}") from None


def _dns_metrics(metrics: ServeMetrics, dns: Any) -> None:
    from registrator.serve import dns_metrics  # noqa: PLC0415 - only with --dns

    dns_metrics.register(metrics.registry, dns)


def _bind_dns(dns: Any, settings: ServeSettings) -> None:
    assert settings.dns is not None  # noqa: S101 - the caller checked
    host, port = settings.dns
    try:
        dns.bind()
    except OSError as exc:  # the port is taken, the address is not ours or unknown
        raise ConfigError(f"--dns {host}:{port}: {exc.strerror or exc}") from None


def _bind_http(address: tuple[str, int]) -> socket.socket:
    """The --http socket, bound before anything runs: a taken port or an address that is not
    ours is one line and exit 2, not uvicorn's own error after start."""
    host, port = address
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(f"--http {host}:{port}: {exc.strerror or exc}") from None
    # Accepted connections inherit it. asyncio sets it only on sockets whose protocol
    # number says TCP (create_server's says 0): without it every kept-alive answer waited
    # 40 ms for the client's delayed ACK.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def _run_http(app: Any, settings: ServeSettings, listener: socket.socket,
              on_shutdown: Callable[[], None]) -> None:
    assert settings.http is not None  # noqa: S101 - the caller checked
    host, port = settings.http
    config = uvicorn.Config(
        app, host=host, port=port, http=limits.BoundedH11Protocol, loop="asyncio",
        lifespan="on", log_config=None, access_log=False, server_header=False,
        limit_concurrency=limits.MAX_CONNECTIONS, backlog=2048,
        timeout_keep_alive=int(limits.KEEP_ALIVE), timeout_graceful_shutdown=2,
        h11_max_incomplete_event_size=limits.MAX_HEAD,
        ssl_certfile=settings.http_cert, ssl_keyfile=settings.http_key,
        ssl_version=ssl.PROTOCOL_TLS_SERVER)
    # uvicorn logs through the standard library: its warnings (a bad request, a limit hit)
    # go to stderr like ours, its per-request chatter does not.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    log.info("serving HTTP", host=host, port=port, tls=settings.http_cert is not None)
    _Server(config, on_shutdown).run(sockets=[listener])


class _Server(uvicorn.Server):
    """uvicorn's server, ending held requests as its shutdown begins (held reads answered,
    event streams ended: not left to be cancelled after the grace period, a traceback
    each), and exiting 0 on SIGTERM/SIGINT."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # SIGTERM/SIGINT end serve with exit 0, as every other command (SPEC §5); uvicorn
        # would raise the signal again after its graceful shutdown (exit -15).
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def _metrics_server(address: tuple[str, int] | None, metrics: Any, health: Any) -> Any:
    if address is None:
        return None
    server = MetricsServer(metrics, address, health)
    server.start()
    log.info("serving /metrics and /healthz", port=server.port)
    return server
