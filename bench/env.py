"""What every benchmark section needs: a private etcd, labelled containers it removes by id,
a raw HTTP client for the Docker socket, and a watch that timestamps keys as they appear."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import docker
from harness import BUSYBOX_IMAGE, EtcdServer, Proxy, wait_until

LABEL = "registrator-bench"
SOCKET = "/var/run/docker.sock"


class UnixHTTP(http.client.HTTPConnection):
    """Kept-alive HTTP over the Docker socket: the floor's client."""

    def __init__(self, path: str = SOCKET) -> None:
        super().__init__("docker")
        self.path_ = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path_)


class Watch:
    """First-seen wall-clock time (ns) of every key put under a prefix."""

    def __init__(self, server: EtcdServer, prefix: str) -> None:
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._id = server.view.client.add_watch_prefix_callback(prefix, self._on)
        self._server = server

    def _on(self, response: Any) -> None:
        now = time.time_ns()
        with self._lock:
            for event in getattr(response, "events", []):
                if type(event).__name__ == "PutEvent":
                    self.seen.setdefault(event.key.decode(), now)

    def count(self, part: str = "") -> int:
        with self._lock:
            return sum(1 for k in self.seen if part in k)

    def close(self) -> None:
        self._server.view.client.cancel_watch(self._id)


class Bench:
    def __init__(self) -> None:
        self.client = docker.from_env()
        self.server = EtcdServer().start()
        self.ids: list[str] = []
        self.tag = uuid.uuid4().hex[:6]

    def run(self, name: str) -> Any:
        c = self.client.containers.run(
            BUSYBOX_IMAGE, "sleep 3600", detach=True, ports={"80/tcp": ("127.0.0.1", None)},
            labels={LABEL: self.tag, "registrator.name": name})
        self.ids.append(c.id)
        return c

    def daemon(self, prefix: str, *args: str, docker_host: str | None = None,
               log: Path | None = None, store: list[str] | None = None,
               code: Path | None = None) -> subprocess.Popen[bytes]:
        """A daemon of this tree's code, or of the `registrator` package under `code`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRATOR_")}
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        if code is not None:
            env["PYTHONPATH"] = str(code)
        out = (log or Path(os.devnull)).open("ab")
        with out:
            return subprocess.Popen(
                [sys.executable, "-m", "registrator", "run",
                 *(store or ["--etcd-endpoints", self.server.endpoint]),
                 "--prefix", prefix, "--hostname", "bench",
                 "--ip", "127.0.0.1", "--log-level", "warning",
                 # Only the bench's own (labelled) containers: others on this dockerd would
                 # add their writes to what the bench counts.
                 "--explicit", *args],
                # -m puts the working directory first on sys.path: run other code from its
                # own directory, or this tree's package would shadow it.
                stdout=out, stderr=out, env=env, cwd=code)

    def remove(self, ids: list[str]) -> None:
        for cid in ids:
            try:
                self.client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                continue
            self.ids.remove(cid)

    def close(self) -> None:
        self.remove(list(self.ids))
        self.server.stop()
        self.client.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(20)


def rss_mb_and_cpu_s(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:")) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


__all__ = ["LABEL", "Bench", "Proxy", "UnixHTTP", "Watch", "rss_mb_and_cpu_s", "stop",
           "wait_until"]
