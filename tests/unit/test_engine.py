"""engine.py against a small real HTTP server on a unix socket: DOCKER_HOST parsing,
kept-alive connections (and the one resend when the server closed one), event streams that
close() ends from another thread, and lines without end."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from registrator.engine import Connections, Endpoint, TlsFiles
from registrator.errors import ConfigError


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked streams

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, Server)
        server.paths.append(self.path)
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b'{"n": 1}\n')
            server.release.wait(10)  # then the stream stays open, silent
            return
        if self.path == "/long":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(20):
                self._chunk(b"x" * 65536)  # 1.25 MiB without a newline
            self._chunk(b"")
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if server.close_after_answer:
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *_: object) -> None:
        return


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        super().__init__(path, Handler)
        self.paths: list[str] = []
        self.connections = 0
        self.close_after_answer = False
        self.release = threading.Event()

    def get_request(self) -> tuple[object, object]:
        request, _ = super().get_request()
        self.connections += 1
        return request, ("local", 0)  # a unix peer has no (host, port) for the handler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "engine.sock"))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def connections(server: Server) -> Connections:
    return Connections(Endpoint(f"unix://{server.server_address}", None).connector(5))


def test_a_relative_socket_path_is_a_path_as_for_the_docker_cli(server, monkeypatch):
    sock = Path(server.server_address)
    monkeypatch.chdir(sock.parent.parent)
    relative = Connections(Endpoint(f"unix://{sock.parent.name}/{sock.name}", None).connector(5))
    assert relative.get("/x")[0] == 200
    relative.close()


def test_a_kept_alive_connection_is_reused(server):
    conns = connections(server)
    assert [conns.get("/a")[0], conns.get("/b")[0], conns.get("/c")[0]] == [200, 200, 200]
    assert server.connections == 1
    conns.close()


def test_a_connection_the_engine_closed_is_replaced_and_the_get_sent_again(server):
    conns = connections(server)
    server.close_after_answer = True
    assert conns.get("/a") == (200, b'{"ok": true}')  # the answer says nothing of the close
    assert conns.get("/b") == (200, b'{"ok": true}')  # the stale one fails, a new one works
    assert server.paths == ["/a", "/b"]
    assert server.connections == 2
    conns.close()


def test_close_from_another_thread_ends_a_blocked_stream(server):
    stream = connections(server).stream("/stream")
    assert stream.status == 200
    assert stream.readline() == b'{"n": 1}\n'
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()))
    reader.start()
    stream.close()
    reader.join(10)
    assert not reader.is_alive()
    assert lines == [b""]  # the end of the stream, not an error


def test_a_line_without_end_is_refused_not_buffered(server):
    stream = connections(server).stream("/long")
    with pytest.raises(ValueError, match="over 1048576 bytes"):
        stream.readline()
    stream.close()


@pytest.mark.parametrize(("environ", "url", "tls"), [
    ({}, "unix:///var/run/docker.sock", None),
    ({"DOCKER_HOST": "tcp://10.0.0.1:2375", "DOCKER_TLS_VERIFY": ""}, "tcp://10.0.0.1:2375",
     None),
    ({"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/c"},
     "tcp://h:2376", TlsFiles("/c/ca.pem", "/c/cert.pem", "/c/key.pem", verify=True)),
    ({"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": "/c"}, "tcp://h:2376",
     TlsFiles("/c/ca.pem", "/c/cert.pem", "/c/key.pem", verify=False)),
])
def test_docker_host_and_tls_variables_as_the_cli_reads_them(environ, url, tls):
    assert Endpoint.from_env(environ) == Endpoint(url, tls)


@pytest.mark.parametrize(("url", "says"), [
    ("ssh://user@host", "the daemon runs on the Docker host it watches"),
    ("npipe:////./pipe/docker_engine", "unix:// or tcp://"),
    ("unix://", "no socket path"),
    ("tcp://:2375", "no host"),
])
def test_docker_hosts_the_daemon_cannot_use_are_named(url, says):
    with pytest.raises(ConfigError, match=says):
        Endpoint(url, None).connector(5)


def test_missing_tls_files_are_named(tmp_path):
    tls = TlsFiles(str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"),
                   str(tmp_path / "key.pem"), verify=True)
    with pytest.raises(ConfigError, match="DOCKER_CERT_PATH"):
        Endpoint("tcp://127.0.0.1:2376", tls).connector(5)
