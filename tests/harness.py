"""Test harness: a real etcd in a container, the daemon as a real subprocess, and containers
the tests start and remove themselves. The etcd view below is the tests' own client, kept
apart from the daemon's store module on purpose: the tests check the store independently."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
from pyetcd.client import Endpoint, MultiEndpointEtcd3Client
from testcontainers.core.container import DockerContainer

T = TypeVar("T")
ETCD_IMAGE = os.environ.get("REGISTRATOR_TEST_ETCD_IMAGE", "registrator-test/etcd:3.4")
BUSYBOX_IMAGE = os.environ.get("REGISTRATOR_TEST_BUSYBOX_IMAGE",
                               "registrator-test/busybox:latest")
TEST_LABEL = "registrator-test"  # every container a test starts carries it


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll until `predicate` returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # noqa: BLE001 - a flaky read is retried like a false one
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; "
                                 f"last result: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answer(port: int, timeout: float = 2.0) -> str | None:
    """The body of GET / on 127.0.0.1:port when it is a 200 (a load balancer's backend
    answering), None otherwise or when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode().strip()
    except OSError:
        return None
    finally:
        conn.close()
    return body if response.status == 200 else None


def terminate(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class EtcdServer:
    """A single-node etcd from the local image, published on 127.0.0.1 only."""

    def __init__(self, host_port: int | None = None, extra: str = "") -> None:
        self.container = (
            DockerContainer(ETCD_IMAGE)
            .with_command("--name node --data-dir /tmp/etcd "
                          "--listen-client-urls http://0.0.0.0:2379 "
                          f"--advertise-client-urls http://127.0.0.1:2379 {extra}")
            .with_kwargs(labels={TEST_LABEL: "etcd"})
        )
        # Published on loopback only (None: a random free port); testcontainers' own
        # helpers would bind every interface.
        self.container.ports = {"2379/tcp": ("127.0.0.1", host_port)}
        self._host_port = host_port
        self.port = 0

    def start(self) -> EtcdServer:
        self.container.start()
        self.port = self._host_port or int(self.container.get_exposed_port(2379))
        self.view = EtcdView(self.port)
        wait_until(self.view.healthy, timeout=30, message="etcd to answer")
        return self

    kind = "etcd"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def daemon_args(self) -> list[str]:
        return ["--etcd-endpoints", self.endpoint]

    def pause(self) -> None:
        self.container.get_wrapped_container().pause()

    def resume(self) -> None:
        self.container.get_wrapped_container().unpause()

    def restart(self) -> None:
        """Same data, same port (give the server a fixed host_port for that)."""
        self.container.get_wrapped_container().restart(timeout=1)
        wait_until(self.view.healthy, timeout=30, message="etcd to answer again")

    def stop(self) -> None:
        self.view.close()
        self.container.stop()


class EtcdView:
    def __init__(self, port: int) -> None:
        ep = Endpoint("127.0.0.1", port, secure=False, time_retry=0.1,
                      opts=[("grpc.initial_reconnect_backoff_ms", 100),
                            ("grpc.max_reconnect_backoff_ms", 500)])
        self.client = MultiEndpointEtcd3Client(endpoints=[ep], timeout=5, failover=True)

    def healthy(self) -> bool:
        self.client.status()
        return True

    def items(self, prefix: str) -> dict[str, bytes]:
        return {m.key.decode(): v for v, m in self.client.get_prefix(prefix)}

    def keys(self, prefix: str) -> set[str]:
        return set(self.items(prefix))

    def created(self, key: str) -> int:
        """When the key was created (a delete and re-create changes it)."""
        return int(self.client.get(key)[1].create_revision)

    def lease_of(self, key: str) -> int:
        _, meta = self.client.get(key)
        return int(meta.lease_id) if meta is not None else 0

    def all_keys(self) -> set[str]:
        return {m.key.decode("utf-8", "replace") for _, m in self.client.get_all()}

    def services(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Readable entries; tests that plant junk values read those with items()."""
        return readable_entries(self.items(prefix + "/services/"))

    def put(self, key: str, value: str) -> None:
        self.client.put(key, value)

    def delete_prefix(self, prefix: str) -> None:
        self.client.delete_prefix(prefix)

    def delete(self, key: str) -> None:
        self.client.delete(key)

    def lease_ttl(self, lease: int) -> int:
        return int(self.client.get_lease_info(lease).TTL)

    def close(self) -> None:
        self.client.close()


class JsonLog:
    """Reading a subprocess's structlog lines (JSON, one event per line) from `log_path`."""

    log_path: Path

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "non-json line", "line": line})
        return out

    def logged(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e.get("event") == event
                and all(e.get(k) == v for k, v in fields.items())]


class Daemon(JsonLog):
    """`registrator run` as a real subprocess, its log in a file."""

    def __init__(self, etcd: Any, prefix: str, hostname: str, log_dir: Path,
                 args: list[str], env: dict[str, str] | None = None) -> None:
        # `etcd`: the store server, EtcdServer or ZooKeeperServer (the name predates the
        # second store); both have .view and .daemon_args().
        self.etcd, self.prefix, self.hostname = etcd, prefix, hostname
        self.store = etcd
        self.log_path = log_dir / f"daemon-{uuid.uuid4().hex[:6]}.log"
        default = (etcd.daemon_args() if hasattr(etcd, "daemon_args")
                   else ["--etcd-endpoints", etcd.endpoint])  # a test's own etcd setup
        store_args = [] if any(a.startswith(("--etcd-endpoints", "--zookeeper"))
                               for a in args) else default
        cmd = [sys.executable, "-m", "registrator", "run", *store_args, "--prefix", prefix,
               "--hostname", hostname, "--ip", "127.0.0.1", "--log-level", "debug", *args]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRATOR_")}
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**full_env, **(env or {})})

    def wait_ready(self) -> Daemon:
        """Ready once the first full reconcile has written this host's record: this daemon's
        own (its pid in it), not one an earlier run left behind, which would make a test
        that restarts a daemon go on before the new one took over."""
        wait_until(lambda: self.wrote_host_record() or self.proc.poll() is not None,
                   timeout=20, message="daemon to write its host record")
        assert self.proc.poll() is None, f"daemon exited: {self.log_path.read_text()[-3000:]}"
        return self

    def wrote_host_record(self) -> bool:
        record = self.host_record()
        return bool(record) and (record.get("instance") or {}).get("pid") == self.proc.pid

    def host_record(self) -> dict[str, Any] | None:
        raw = self.etcd.view.items(f"{self.prefix}/hosts/{self.hostname}")
        return json.loads(next(iter(raw.values()))) if raw else None

    def services(self) -> dict[str, dict[str, Any]]:
        return self.etcd.view.services(self.prefix)

    def mine(self, containers: Containers) -> dict[str, dict[str, Any]]:
        """Entries of the containers this test started (dockerd is shared with others)."""
        ids = set(containers.ids)
        return {k: v for k, v in self.services().items() if v.get("container_id") in ids}

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class Containers:
    """Starts test containers and removes exactly those, by id."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.ids: list[str] = []

    def run(self, command: str = "httpd -f -p 80", *, image: str = BUSYBOX_IMAGE,
            ports: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
            **kwargs: Any) -> Any:
        container = self.client.containers.run(
            image, command, detach=True, ports=ports or {},
            labels={TEST_LABEL: "app", **(labels or {})}, **kwargs)
        self.ids.append(container.id)
        return container

    def remove_all(self) -> None:
        for cid in reversed(self.ids):
            try:
                self.client.containers.get(cid).remove(force=True)
            except docker.errors.NotFound:
                continue
        self.ids.clear()


def readable_entries(items: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """The values that parse as JSON, by key (either store's view)."""
    out = {}
    for key, value in items.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            continue
    return out


def new_prefix() -> str:
    return f"/t-{uuid.uuid4().hex[:10]}"


def published_port(container: Any, port: str) -> int:
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])




def http1_requests() -> Callable[[bytes], int]:
    """Counts HTTP/1 requests in a client's byte stream (the Docker API)."""
    return lambda data: sum(data.count(m) for m in (b"GET /", b"POST /", b"HEAD /"))


def grpc_calls() -> Callable[[bytes], int]:
    """Counts gRPC calls in one connection's client stream: each opens an HTTP/2 stream with
    a HEADERS frame (etcd's lease keepalive is one stream for its whole life)."""
    state = {"buf": b"", "preface": True}

    def count(data: bytes) -> int:
        buf = state["buf"] + data  # type: ignore[operator]
        if state["preface"]:
            if len(buf) < 24:
                state["buf"] = buf
                return 0
            buf, state["preface"] = buf[24:], False
        calls = 0
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            calls += buf[3] == 1  # HEADERS
            buf = buf[9 + length:]
        state["buf"] = buf
        return calls

    return count


class Proxy:
    """Forwards a listening socket (a unix path, or a port on 127.0.0.1) to a target. `cut()`
    drops every connection and refuses new ones until `restore()`: a network partition
    between the daemon and Docker or etcd, without touching either. It also counts what
    passes: bytes each way, and requests when given a counter factory (one per connection)."""

    def __init__(self, target: str | tuple[str, int], listen: str | None = None,
                 requests: Callable[[], Callable[[bytes], int]] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.target = target
        self._tls = tls  # a server-side context: clients speak TLS to the proxy
        self.listen = listen if listen is not None else ("127.0.0.1", free_port())
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._counter = requests
        self.sent = self.received = self.requests = 0  # client -> target, target -> client
        self.restore()

    def reset_counts(self) -> None:
        with self._lock:
            self.sent = self.received = self.requests = 0

    def _count(self, upstream: bool, data: bytes, counter: Callable[[bytes], int] | None,
               ) -> None:
        with self._lock:
            if upstream:
                self.sent += len(data)
                self.requests += counter(data) if counter is not None else 0
            else:
                self.received += len(data)

    @property
    def port(self) -> int:
        assert isinstance(self.listen, tuple)
        return self.listen[1]

    def _socket(self, address: str | tuple[str, int]) -> socket.socket:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        return socket.socket(family, socket.SOCK_STREAM)

    def restore(self) -> None:
        server = self._socket(self.listen)
        if isinstance(self.listen, str):
            Path(self.listen).unlink(missing_ok=True)
        else:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self.listen)
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._server is not None:
                # shutdown() wakes the thread blocked in accept(); close() alone would not,
                # and the listener would go on accepting.
                with contextlib.suppress(OSError):
                    self._server.shutdown(socket.SHUT_RDWR)
                self._server.close()
                self._server = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if self._tls is not None:
                try:
                    client.settimeout(5)
                    client = self._tls.wrap_socket(client, server_side=True)
                    client.settimeout(None)
                except OSError:  # a handshake refused (wrong CA, no certificate)
                    client.close()
                    continue
            upstream = self._socket(self.target)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            counter = self._counter() if self._counter is not None else None
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, up, counter),
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool,
              counter: Callable[[bytes], int] | None) -> None:
        try:
            while data := src.recv(65536):
                self._count(upstream, data, counter)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Pass the end of stream on, and close our side: the other pump then fails its
            # send or reads EOF and closes the other socket, so nothing is left open.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            src.close()
