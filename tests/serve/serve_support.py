"""Helpers of the serve tests: `registrator serve` as a real subprocess on a free loopback
port, stopped by its own pid; a small HTTP client; entries written straight to the store."""

from __future__ import annotations

import http.client
import json
import re
import socket
from typing import Any

from consumer_support import Process, cli
from harness import free_port, wait_until


def store_args(server: Any) -> list[str]:
    return ["--zookeeper", server.connect] if server.kind == "zookeeper" else [
        "--etcd-endpoints", server.endpoint]


def record(name: str, sid: str, port: int, **extra: Any) -> dict[str, Any]:
    return {"version": 1, "name": name, "id": sid, "address": "127.0.0.1", "port": port,
            "protocol": "tcp", "tags": [], "meta": {}, "host": "h1", "container_id": "c",
            "container_name": "/c", "image": "busybox", "health": "none",
            "registered_at": "2026-01-01T00:00:00+00:00", **extra}


def put(server: Any, prefix: str, entry: dict[str, Any]) -> dict[str, Any]:
    server.view.put(f"{prefix}/services/{entry['name']}/{entry['id']}", json.dumps(entry))
    return entry


def put_host(server: Any, prefix: str, hostname: str, **extra: Any) -> dict[str, Any]:
    host = {"version": 1, "hostname": hostname, "address": "127.0.0.1", "lease": "1",
            "ttl": 30, "registrator_version": "test", "started_at": "2026-01-01T00:00:00Z",
            "labels": {}, **extra}
    server.view.put(f"{prefix}/hosts/{hostname}", json.dumps(host))
    return host


def request(port: int, path: str, *, timeout: float = 10.0, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        conn.close()


def get_json(port: int, path: str, **kwargs: Any) -> Any:
    status, _, body = request(port, path, **kwargs)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


class Serve:
    """One `registrator serve --http 127.0.0.1:<free port>` of a test's own."""

    def __init__(self, start: Any, server: Any, prefix: str, *args: str,
                 env: dict[str, str] | None = None, ready: bool = True,
                 via: list[str] | None = None) -> None:
        self.port = free_port()
        self.server, self.prefix = server, prefix
        self.process = start("serve", *(via or store_args(server)), "--prefix", prefix,
                             "--http", f"127.0.0.1:{self.port}", *args, env=env)
        if ready:
            wait_until(self.loaded, timeout=30, message="serve to answer from a loaded copy")

    def loaded(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"serve exited: {self.process.log_path.read_text()[-2000:]}")
        try:
            status, headers, _ = request(self.port, "/healthz", timeout=2)
        except OSError:
            return False
        # Loaded, and watching (not only read once): the copy follows the store from here.
        return status == 200 and "x-registrator-stale" not in headers

    def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        return request(self.port, path, **kwargs)

    def json(self, path: str, **kwargs: Any) -> Any:
        return get_json(self.port, path, **kwargs)


def ls_json(server: Any, prefix: str, *args: str) -> Any:
    out = cli("ls", *store_args(server), "--prefix", prefix, "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


__all__ = ["Process", "Serve", "get_json", "ls_json", "put", "put_host", "record", "request"]


def read_all(sock: socket.socket) -> bytes:
    """Everything a raw HTTP connection sends until it is closed (or reset, or quiet past
    the socket's timeout); the socket is closed after."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def status_of(raw: bytes) -> int | None:
    """The status code of a raw HTTP/1.1 answer, None when it is not one."""
    match = re.match(rb"HTTP/1\.1 (\d{3})", raw)
    return int(match.group(1)) if match else None
