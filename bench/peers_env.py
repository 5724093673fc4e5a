"""What the side-by-side with the peer programs (gliderlabs/registrator, confd) needs beyond
env.py: containers labelled for both registrators, an etcd that also speaks the v2 API
(gliderlabs' etcd backend knows no other), a v2 watch that timestamps keys as they appear,
the peer daemons themselves, and the store counters a liveness window reads."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
from env import LABEL, SOCKET, Bench, Proxy
from harness import BUSYBOX_IMAGE, EtcdServer, free_port
from kazoo.client import KazooClient


class PeerBench(Bench):
    """Bench whose containers carry the label of both registrators (gliderlabs' `-explicit`
    wants SERVICE_NAME; ours `registrator.name`), the same value, and a name of their own:
    gliderlabs' etcd keys hold the container name, its ZooKeeper keys the published port."""

    def __init__(self, name_prefix: str) -> None:
        super().__init__()
        self.name_prefix = name_prefix
        self._made = 0
        self._lock = threading.Lock()
        self.names: dict[str, str] = {}  # id -> name, of every container this run made

    def run(self, name: str) -> Any:
        with self._lock:  # names are unique; the same service name comes back per phase
            self._made += 1
            made = self._made
        c = self.client.containers.run(
            BUSYBOX_IMAGE, "sleep 3600", detach=True,
            name=f"{self.name_prefix}{self.tag}-{made}-{name}",
            ports={"80/tcp": ("127.0.0.1", None)},
            labels={LABEL: self.tag, "registrator.name": name, "SERVICE_NAME": name})
        self.ids.append(c.id)
        self.names[c.id] = c.name
        return c

    def remove(self, ids: list[str]) -> None:
        """Several at a time: a bench run makes ~1,000 containers."""
        gone = set(ids)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(self._remove_one, ids))
        self.ids = [cid for cid in self.ids if cid not in gone]

    def _remove_one(self, cid: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(cid, force=True)

    def mine(self, key: str) -> bool:
        """Whether a key (gliderlabs' or ours) names one of this run's containers."""
        return f":{self.name_prefix}{self.tag}-" in key


class PeerEtcd:
    """An etcd 3.4 with `--enable-v2`. gliderlabs' client re-reads the member list before
    every write and then talks to the advertised URL: with `counted`, etcd advertises a
    counting proxy in front of itself, so every byte of both daemons passes through it."""

    def __init__(self, counted: bool = False) -> None:
        port = free_port()
        self.proxy = Proxy(("127.0.0.1", port)) if counted else None
        advertised = self.proxy.port if self.proxy is not None else port
        self.server = EtcdServer(host_port=port, extra="--enable-v2 --advertise-client-urls "
                                 f"http://127.0.0.1:{advertised}").start()
        self.direct = self.server.endpoint

    @property
    def endpoint(self) -> str:
        """What a daemon is given: the proxy when counted, else etcd itself."""
        return f"http://127.0.0.1:{self.proxy.port}" if self.proxy is not None else self.direct

    def counters(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.direct}/metrics", timeout=5) as r:  # noqa: S310
            text = r.read().decode()
        wanted = {"v2_writes": "etcd_debugging_store_writes_total",
                  "v3_puts": "etcd_mvcc_put_total", "v3_deletes": "etcd_mvcc_delete_total",
                  "commits": "etcd_server_proposals_committed_total",
                  "fsyncs": "etcd_disk_wal_fsync_duration_seconds_count",
                  "keepalives": 'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive"'}
        out = dict.fromkeys(wanted, 0.0)
        for line in text.splitlines():
            for name, prefix in wanted.items():
                if line.startswith(prefix):
                    out[name] += float(line.rsplit(" ", 1)[1])
        if self.proxy is not None:
            out["bytes"] = float(self.proxy.sent + self.proxy.received)
        return out

    def v2_keys(self, prefix: str) -> list[str]:
        """The keys (not directories) under a v2 prefix."""
        url = f"{self.direct}/v2/keys{prefix}?recursive=true"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310
                node = json.loads(r.read())["node"]
        except OSError:  # 404: nothing there yet
            return []

        def leaves(n: dict[str, Any]) -> list[str]:
            if not n.get("dir"):
                return [n["key"]]
            return [k for c in n.get("nodes", []) for k in leaves(c)]

        return leaves(node) if node.get("dir") else []

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.cut()
        self.server.stop()


class V2Watch:
    """First-seen wall-clock time (ns) of every key set under a v2 prefix (env.Watch's twin):
    one streaming watch (`stream=true`: every event on one long response, as etcd's own v2
    watchers get them), restarted from the index after the last event if the line drops."""

    def __init__(self, etcd: PeerEtcd, prefix: str) -> None:
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._prefix, self._port = prefix, etcd.server.port
        self._conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
        self._conn.request("GET", "/v2/keys/")
        response = self._conn.getresponse()
        response.read()
        self._index = int(response.getheader("X-Etcd-Index", "0")) + 1
        self._closed = False
        self.reconnects = 0
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _stream(self) -> None:
        self._conn.request("GET", f"/v2/keys{self._prefix}?wait=true&recursive=true"
                           f"&stream=true&waitIndex={self._index}")
        response = self._conn.getresponse()
        self._ready.set()
        while line := response.readline():
            now = time.time_ns()
            if not line.strip():
                continue
            body = json.loads(line)
            if "node" not in body:  # an error (401 "event index cleared"): start over
                return
            node = body["node"]
            self._index = int(node["modifiedIndex"]) + 1
            if body.get("action") in {"set", "create", "update", "compareAndSwap"}:
                with self._lock:
                    self.seen.setdefault(node["key"], now)

    def _run(self) -> None:
        for _ in range(10_000):  # bounded: reconnects after a drop or an idle timeout
            if self._closed:
                return
            # http.client fails in many ways on a dropped line or an idle timeout; the
            # next stream asks from the same index again, so no event is lost.
            with contextlib.suppress(Exception):
                self._stream()
            self._conn.close()
            if self._closed:
                return
            self._conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
            self.reconnects += 1

    def count(self, part: str = "") -> int:
        with self._lock:
            return sum(1 for k in self.seen if part in k)

    def close(self) -> None:
        self._closed = True
        if self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


def gliderlabs(binary: Path, store_uri: str, log: Path, *extra: str,
               docker_host: str = f"unix://{SOCKET}") -> subprocess.Popen[bytes]:
    """gliderlabs/registrator as its README runs it on a shared host: `-explicit`, the
    host's address; its default Docker endpoint is /tmp/docker.sock (its image's mount)."""
    env = {**os.environ, "DOCKER_HOST": docker_host}
    with log.open("ab") as out:
        return subprocess.Popen([str(binary), "-explicit", "-ip", "127.0.0.1", *extra,
                                 store_uri], stdout=out, stderr=out, env=env)


GLIDERLABS_ETCD = ("-ttl", "30", "-ttl-refresh", "10")  # the README's refresh pattern
OURS = ("--ttl", "30")  # the default lease; the default 60 s resync stays on


class ZkTxns:
    """Counts a ZooKeeper server's write transactions: each (create, set, delete, session
    open or close) takes the next zxid. Read with a write of our own on one session kept
    open, so the delta of two readings is the transactions in between plus one."""

    def __init__(self, connect: str, probe: str) -> None:
        self._zk = KazooClient(hosts=connect, timeout=10)
        self._zk.start(timeout=10)
        self._probe = probe
        self._zk.ensure_path(probe)

    def read(self) -> int:
        return int(self._zk.set(self._probe, b"").mzxid) & 0xFFFFFFFF  # within an epoch

    def close(self) -> None:
        self._zk.stop()
        self._zk.close()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


__all__ = [
    "GLIDERLABS_ETCD",
    "OURS",
    "PeerBench",
    "PeerEtcd",
    "V2Watch",
    "ZkTxns",
    "cpu_s",
    "gliderlabs",
]
