"""Tools of the serve benchmark: registry entries written straight to etcd, `registrator
serve` and dnsmasq as subprocesses, dnsperf, and a bounded HTTP/1.1 keep-alive load loop."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.message
import dns.query
import pyetcd.transactions
from env import wait_until

from registrator.serve.dns_zone import id_hash

if TYPE_CHECKING:
    from harness import EtcdServer

DNSPERF = shutil.which("dnsperf")
DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists()
                                      else None)
DOMAIN = "registrator"


def entry(name: str, n: int, i: int) -> dict[str, Any]:
    """A SPEC §4 entry: instance n of service `name`, the i-th of the run (its address and
    port: 127.x.y.z, 20000 + i)."""
    return {"version": 1, "name": name, "id": f"bench:{name}-{n}:80",
            "address": f"127.{(i // 62500) % 250 + 1}.{(i // 250) % 250}.{i % 250 + 1}",
            "port": 20000 + i % 40000,
            "protocol": "tcp", "tags": ["bench"], "meta": {"n": str(n)}, "host": "bench",
            "container_id": f"c{n}", "container_name": f"/{name}-{n}", "image": "busybox",
            "health": "none", "registered_at": "2026-01-01T00:00:00.000Z"}


def put_entries(server: EtcdServer, prefix: str, entries: list[dict[str, Any]]) -> None:
    """Many entries, 128 to a transaction (etcd's default limit)."""
    client = server.view.client
    for start in range(0, len(entries), 128):
        ops = [pyetcd.transactions.Put(f"{prefix}/services/{e['name']}/{e['id']}",
                                       json.dumps(e)) for e in entries[start:start + 128]]
        client.transaction(compare=[], success=ops, failure=[])


def free_port() -> int:
    """A loopback port free for UDP and TCP both."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Serve:
    """`registrator serve --http --dns` of this tree, on loopback ports of its own."""

    def __init__(self, server: EtcdServer, prefix: str, log: Path) -> None:
        self.http, self.dns = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRATOR_")}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "registrator", "serve", "--etcd-endpoints",
                 server.endpoint, "--prefix", prefix, "--http", f"127.0.0.1:{self.http}",
                 "--dns", f"127.0.0.1:{self.dns}", "--log-level", "warning"],
                stdout=out, stderr=out, env=env)
        self.log = log

    def count(self) -> int:
        """Entries the copy holds (GET /v1/services)."""
        status, body, _ = http_get(self.http, "/v1/services")
        return sum(json.loads(body).values()) if status == 200 else -1

    def wait_count(self, n: int, timeout: float = 120) -> None:
        wait_until(lambda: self.proc.poll() is None and self.count() == n, timeout=timeout,
                   interval=0.2, message=f"serve holding {n} entries (log {self.log})")


def http_get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    except OSError:
        return -1, b"", {}
    finally:
        conn.close()


def dns_ask(port: int, name: str, rdtype: str = "A", timeout: float = 1.0) -> Any:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)


def dnsmasq_config(path: Path, entries: list[dict[str, Any]]) -> None:
    """The same records serve answers, as dnsmasq's own config: A records from a hosts file,
    SRV records from srv-host lines (their targets' A records in the same hosts file)."""
    hosts, srv = [], []
    for e in entries:
        name, target = e["name"], f"{id_hash(e['id'])}.addr.{DOMAIN}"
        hosts.append(f"{e['address']} {name}.service.{DOMAIN}")
        hosts.append(f"{e['address']} {target}")
        srv.append(f"srv-host=_{name}._tcp.service.{DOMAIN},{target},{e['port']},1,1")
    (path / "hosts").write_text("\n".join(hosts) + "\n")
    (path / "dnsmasq.conf").write_text("\n".join(srv) + "\n")


def start_dnsmasq(path: Path, port: int) -> subprocess.Popen[bytes]:
    """dnsmasq in the foreground on loopback, answering only from its own files."""
    assert DNSMASQ is not None  # noqa: S101 - the caller checked
    path.chmod(0o755)  # dnsmasq reads its files after dropping to its own user
    for name in ("hosts", "dnsmasq.conf"):
        (path / name).chmod(0o644)
    proc = subprocess.Popen(
        [DNSMASQ, "--keep-in-foreground", f"--port={port}", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll",
         f"--addn-hosts={path / 'hosts'}", f"--conf-file={path / 'dnsmasq.conf'}",
         f"--local=/{DOMAIN}/", f"--pid-file={path / 'dnsmasq.pid'}",
         "--log-facility=-", "--cache-size=10000"],
        stdout=subprocess.DEVNULL, stderr=(path / "dnsmasq.log").open("ab"))
    wait_until(lambda: proc.poll() is None and dns_ask(port, f"_x._tcp.service.{DOMAIN}"),
               timeout=15, message=f"dnsmasq answering (log {path / 'dnsmasq.log'})")
    return proc


def dnsperf(port: int, queries: Path, seconds: float, clients: int = 4) -> dict[str, float]:
    """Answers per second as dnsperf measures them (bounded by -l), and the share lost."""
    assert DNSPERF is not None  # noqa: S101 - the caller checked
    out = subprocess.run(
        [DNSPERF, "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
         "-c", str(clients), "-q", "100", "-t", "2"],
        capture_output=True, text=True, timeout=seconds + 60, check=False).stdout
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out)
    if qps is None:
        raise RuntimeError(f"dnsperf printed no rate: {out[-1500:]}")
    return {"qps": float(qps.group(1)), "lost_pct": float(lost.group(1)) if lost else 0.0}


async def _http_client(port: int, path: str, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
    finally:
        writer.close()


def http_load(port: int, path: str, seconds: float, clients: int = 8) -> dict[str, float]:
    """Requests/s of GET `path` over `clients` kept-alive connections for `seconds`."""
    counts = [0, 0]

    async def run() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.wait_for(asyncio.gather(*(
            _http_client(port, path, deadline, counts) for _ in range(clients))), seconds + 30)

    started = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - started
    return {"rps": counts[0] / elapsed, "errors": counts[1]}


def trivial_http(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The floor of the HTTP side: one trivial route on serve's own server stack."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name(
            "serve_trivial.py")), str(port)], stdout=out, stderr=out)
    wait_until(lambda: http_get(port, "/")[0] == 200, timeout=30,
               message=f"the trivial app (log {log})")
    return proc, port
