"""serve's listening sockets hand TCP_NODELAY to every connection they accept. asyncio sets
it itself only on sockets whose protocol number says TCP, and sockets made by
socket.create_server() or socket.socket(family, SOCK_STREAM) say 0: without it every
kept-alive HTTP answer (headers and body written apart) and every second pipelined DNS
answer waited for the client's delayed ACK, 40 ms each (measured: 45 ms per request)."""

from __future__ import annotations

import socket

from registrator.serve.dns import DnsServer
from registrator.serve.run import _bind_http


def accepted_nodelay(listener: socket.socket) -> int:
    with socket.create_connection(listener.getsockname()[:2], timeout=5):
        conn, _ = listener.accept()
        with conn:
            return conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_http_listener_passes_nodelay_on():
    listener = _bind_http(("127.0.0.1", 0))
    with listener:
        assert accepted_nodelay(listener)


class _NoState:
    revision, services, hosts = 0, {}, ()


def test_dns_tcp_listener_passes_nodelay_on():
    server = DnsServer(_NoState, lambda _cb: None)
    server.bind()
    try:
        assert accepted_nodelay(server._tcp)  # noqa: SLF001 - the listener itself is the point
    finally:
        server.stop()
