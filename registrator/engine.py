"""Where the Docker engine is, and kept-alive HTTP connections to it.

The daemon's few calls (version, info, list, inspect, events) are plain GETs of JSON, so they
go through the standard library's http.client: the Docker SDK, requests and urllib3 cost a
cold start ~130 ms and the daemon ~8 MB for machinery it never used. DOCKER_HOST,
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH mean what they mean to the docker CLI. unix://,
tcp://, http:// and https:// are spoken; ssh:// is refused with a clear line (the daemon runs
on the Docker host it watches, with the socket mounted).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from registrator.errors import ConfigError

DEFAULT_HOST = "unix:///var/run/docker.sock"
_LINE_MAX = 1 << 20  # an engine event is a few hundred bytes
_IDLE_MAX = 10  # the inspect workers and a spare; more are closed after use
# A kept-alive connection the engine closed meanwhile fails on first use in one of these
# ways; a GET is then sent again once, on a new connection (what urllib3 does as well).
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError,
          ConnectionResetError)


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str
    verify: bool


@dataclass(frozen=True)
class Endpoint:
    """DOCKER_HOST and its TLS settings, read the way the docker CLI reads them."""

    url: str
    tls: TlsFiles | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Endpoint:
        url = (environ.get("DOCKER_HOST") or DEFAULT_HOST).strip()
        cert_path = environ.get("DOCKER_CERT_PATH") or None
        # As the CLI: DOCKER_TLS_VERIFY set to anything but "" turns verification on.
        verify = bool(environ.get("DOCKER_TLS_VERIFY"))
        if not (cert_path or verify):
            return cls(url, None)
        base = Path(cert_path) if cert_path else Path("~/.docker").expanduser()
        return cls(url, TlsFiles(str(base / "ca.pem"), str(base / "cert.pem"),
                                 str(base / "key.pem"), verify))

    def connector(self, timeout: float) -> Callable[[], http.client.HTTPConnection]:
        """Makes a new (not yet connected) connection to the engine; raises ConfigError for
        a DOCKER_HOST it cannot reach."""
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme == "unix":
            # As the CLI: everything after "unix://" is the path (unix://run/d.sock is
            # relative), not a host and a path as urlsplit would have it.
            path = self.url[len("unix://"):]
            if not path:
                raise ConfigError(f"DOCKER_HOST {self.url!r}: no socket path")
            return lambda: UnixConnection(path, timeout)
        if scheme not in ("tcp", "http", "https"):
            raise ConfigError(
                f"DOCKER_HOST {self.url!r}: unix:// or tcp:// (with DOCKER_TLS_VERIFY and "
                "DOCKER_CERT_PATH for TLS); the daemon runs on the Docker host it watches")
        host = parts.hostname
        if not host:
            raise ConfigError(f"DOCKER_HOST {self.url!r}: no host")
        if self.tls is None and scheme != "https":
            return lambda: http.client.HTTPConnection(host, parts.port or 2375, timeout=timeout)
        context = self._tls_context()
        return lambda: http.client.HTTPSConnection(host, parts.port or 2376, timeout=timeout,
                                                   context=context)

    def _tls_context(self) -> ssl.SSLContext:
        tls = self.tls
        try:
            if tls is not None and not tls.verify:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                context = ssl.create_default_context(cafile=tls.ca if tls else None)
            if tls is not None:
                context.load_cert_chain(tls.cert, tls.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"Docker TLS files (DOCKER_CERT_PATH): {exc}") from None
        return context


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Connections:
    """Kept-alive connections shared by threads: each request takes an idle one or opens a
    new one, and gives it back once the answer is read whole."""

    def __init__(self, connect: Callable[[], http.client.HTTPConnection]) -> None:
        self._connect = connect
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def get(self, path: str) -> tuple[int, bytes]:
        """Status and body of a GET."""
        for attempt in (1, 2):
            conn, reused = self._take()
            try:
                conn.request("GET", path, headers={"Accept": "application/json"})
                response = conn.getresponse()
                body = response.read()
            except _STALE:
                conn.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if response.will_close:
                conn.close()
            else:
                self._give(conn)
            return response.status, body
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def stream(self, path: str) -> Stream:
        """A GET whose answer is read as it comes, on a connection of its own with no read
        timeout (a quiet engine sends nothing for hours)."""
        conn = self._connect()
        try:
            conn.connect()
            sock = conn.sock
            sock.settimeout(None)
            conn.request("GET", path, headers={"Accept": "application/json"})
            return Stream(conn, sock, conn.getresponse())
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < _IDLE_MAX:
                self._idle.append(conn)
                return
        conn.close()


class Stream:
    """An answer being read as it comes; close() from any thread ends a blocked read."""

    def __init__(self, conn: http.client.HTTPConnection, sock: socket.socket,
                 response: http.client.HTTPResponse) -> None:
        self.conn, self.sock, self.response = conn, sock, response
        self.status = response.status
        self._closed = False

    def readline(self) -> bytes:
        """The next line, b"" at the end (the engine closed it, or close() was called).
        A line past _LINE_MAX is not an event: ValueError, rather than memory without end."""
        try:
            line = self.response.readline(_LINE_MAX)
        except (http.client.HTTPException, OSError, ValueError, AttributeError):
            # What a read cut by close() raises: a torn chunk header, a response whose file
            # close() took. After close() that is simply the end.
            if self._closed:
                return b""
            raise
        if len(line) >= _LINE_MAX and not line.endswith(b"\n"):
            raise ValueError(f"a line of over {_LINE_MAX} bytes in the answer")
        return line

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):  # already closed by the engine
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv()
        self.response.close()
        self.conn.close()


__all__ = ["DEFAULT_HOST", "Connections", "Endpoint", "Stream", "TlsFiles", "UnixConnection"]
