"""`registrator render` against confd (`-watch`, etcdv3 backend), issue 24: the same template
logic (one backend list of N entries, one line each), each program on an etcd of its own
holding the same N entries in its own layout (ours: JSON entries under services/web/;
confd: plain `ip:port` values under one directory). Per N: one change (the put acknowledged)
-> the new file in place, p50/p99 over changes made one at a time, the two programs in turns;
CPU per 1,000 of those changes; RSS; and a burst of changes put back to back: how many
times the file was written (an inotify watch on its directory) and last change -> final
file. Ours runs with `--wait 1ms:1ms` (confd has no quiet time) and, for the burst, also
with its default `--wait 200ms:2s`."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from env import stop
from harness import EtcdServer
from inotify_simple import INotify, flags
from peers_env import cpu_s
from sections import pct

CONFD_TOML = '[template]\nsrc = "web.tmpl"\ndest = "{dest}"\nkeys = ["{dir}"]\n'
CONFD_TMPL = ('{{{{range gets "{dir}/*"}}}}server {{{{base .Key}}}} {{{{.Value}}}} check\n'
              "{{{{end}}}}")
OURS_TMPL = ('{% for e in services["web"] %}server {{ e.id }} {{ e.address }}:{{ e.port }} '
             'check\n{% endfor %}')
FAST, DEFAULT = "1ms:1ms", "200ms:2s"


def entry(i: int, port: int) -> tuple[str, str, dict[str, Any]]:
    """The i-th entry: its id, its address, and our JSON record of it."""
    sid, address = f"h{i // 100:03d}:c{i}:80", f"10.{i // 62500}.{i // 250 % 250}.{i % 250}"
    return sid, address, {
        "version": 1, "name": "web", "id": sid, "address": address, "port": port,
        "protocol": "tcp", "tags": [], "meta": {}, "host": f"h{i // 100:03d}",
        "container_id": f"{i:064x}", "container_name": f"/c{i}", "image": "busybox",
        "health": "none", "registered_at": "2026-01-01T00:00:00Z"}


class Tool:
    """One rendering program on its own etcd: how to start it, and how a change to entry i
    is written in its layout."""

    def __init__(self, name: str, server: EtcdServer, n: int, tmp: Path, peers: Path,  # noqa: PLR0913 - the six differ per tool
                 wait: str = FAST) -> None:
        self.name, self.server, self.n, self.wait = name, server, n, wait
        self.dir = tmp / f"{name}-{n}-{wait.replace(':', '_')}"
        self.dir.mkdir(parents=True)
        self.dest = self.dir / "out" / "web.cfg"
        self.dest.parent.mkdir()
        self.root = f"/confd{n}/web" if name == "confd" else f"/ours{n}"
        self.peers = peers
        self.proc: subprocess.Popen[bytes] | None = None

    def item(self, i: int, port: int) -> tuple[str, str]:
        sid, address, record = entry(i, port)
        if self.name == "confd":
            return f"{self.root}/{sid.replace(':', '_')}", f"{address}:{port}"
        return f"{self.root}/services/web/{sid}", json.dumps(record)

    def load(self) -> None:
        """The N entries, 100 to a transaction (not timed)."""
        client = self.server.view.client
        items = [self.item(i, 8000 + i % 1000) for i in range(self.n)]
        for start in range(0, len(items), 100):
            client.transaction(compare=[], success=[client.transactions.put(k, v)
                                                    for k, v in items[start:start + 100]],
                               failure=[])

    def start(self) -> None:
        log = (self.dir / "log").open("ab")
        if self.name == "confd":
            (self.dir / "conf.d").mkdir()
            (self.dir / "templates").mkdir()
            (self.dir / "conf.d" / "web.toml").write_text(
                CONFD_TOML.format(dest=self.dest, dir=self.root))
            (self.dir / "templates" / "web.tmpl").write_text(CONFD_TMPL.format(dir=self.root))
            argv = [str(self.peers / "confd"), "-backend", "etcdv3", "-node",
                    self.server.endpoint, "-confdir", str(self.dir), "-watch",
                    "-log-level", "warn"]
        else:
            (self.dir / "web.j2").write_text(OURS_TMPL)
            argv = [sys.executable, "-m", "registrator", "render", "--etcd-endpoints",
                    self.server.endpoint, "--prefix", self.root, "--template",
                    str(self.dir / "web.j2"), "--dest", str(self.dest), "--wait", self.wait,
                    "--log-level", "warning"]
        with log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.dest.exists() and self.dest.read_text().count("\n") == self.n:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not render {self.n} entries (see {log.name})")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class Written:
    """The writes of one file (renamed into place, or rewritten): inotify on its directory,
    so each write is seen when it happens, without polling the file."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.inotify = INotify()
        self.inotify.add_watch(str(dest.parent), flags.MOVED_TO | flags.CLOSE_WRITE)

    def drain(self) -> None:
        self.inotify.read(timeout=0)

    def until(self, done: Callable[[str], bool], timeout: float) -> tuple[int | None, int]:
        """(wall-clock ns of the first write after which `done(text)`, writes until then)."""
        writes, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.inotify.read(timeout=100)
            now = time.time_ns()
            hits = sum(1 for e in events if e.name == self.dest.name)
            if hits:
                writes += hits
                if done(self.dest.read_text()):
                    return now, writes
        return None, writes

    def close(self) -> None:
        self.inotify.close()


def changes(tool: Tool, written: Written, port: int, i: int) -> float:
    """Entry i gets `port`: ms from just before the put to the file holding it."""
    key, value = tool.item(i, port)
    needle = f":{port} check"
    written.drain()
    t0 = time.time_ns()
    tool.server.view.client.put(key, value)
    at, _ = written.until(lambda text: needle in text, timeout=30)
    if at is None:
        raise RuntimeError(f"{tool.name}: change {port} never rendered")
    return (at - t0) / 1e6


def burst(tool: Tool, written: Written, count: int, base: int) -> dict[str, float]:
    """`count` changes put back to back (each acknowledged before the next), on distinct
    entries where N allows: file writes until the file holds every last value."""
    final: dict[int, int] = {}
    client = tool.server.view.client
    written.drain()
    for j in range(count):
        i = (j * 7919) % tool.n
        key, value = tool.item(i, base + j)
        client.put(key, value)
        final[i] = base + j
    last = time.time_ns()
    needles = [f":{p} check" for p in final.values()]
    at, writes = written.until(lambda text: all(n in text for n in needles), timeout=60)
    if at is None:
        raise RuntimeError(f"{tool.name}: the burst never fully rendered")
    return {"changes": count, "writes": writes, "last_change_to_file_ms": (at - last) / 1e6}


def one_size(n: int, count: int, burst_size: int, servers: dict[str, EtcdServer],  # noqa: PLR0913
             tmp: Path, peers: Path) -> dict[str, Any]:
    tools = [Tool("confd", servers["confd"], n, tmp, peers),
             Tool("ours", servers["ours"], n, tmp, peers)]
    watches: list[Written] = []
    try:
        for tool in tools:
            tool.load()
            tool.start()
            watches.append(Written(tool.dest))
        ms: dict[str, list[float]] = {t.name: [] for t in tools}
        cpu: dict[str, float] = {}
        before = {t.name: cpu_s(t.proc.pid) for t in tools if t.proc is not None}
        for k in range(count):  # in turns: a busy moment of the machine hits both alike
            for tool, written in zip(tools, watches, strict=True):
                ms[tool.name].append(changes(tool, written, 20000 + k, (k * 7919) % n))
        out: dict[str, Any] = {"entries": n}
        for tool, written in zip(tools, watches, strict=True):
            if tool.proc is None:
                continue
            cpu[tool.name] = cpu_s(tool.proc.pid) - before[tool.name]
            status = Path(f"/proc/{tool.proc.pid}/status").read_text()
            out[tool.name] = {
                "changes": count, "p50_ms": statistics.median(ms[tool.name]),
                "p99_ms": pct(ms[tool.name], 0.99),
                "cpu_s_per_1000": cpu[tool.name] * 1000 / count,
                "rss_mb": next(int(line.split()[1]) for line in status.splitlines()
                               if line.startswith("VmRSS:")) / 1024,
                "burst": burst(tool, written, burst_size, 30000)}
        tools[1].stop()  # ours again with its default quiet time, for the burst alone
        slow = Tool("ours", servers["ours"], n, tmp, peers, wait=DEFAULT)
        tools.append(slow)
        slow.start()
        watches.append(Written(slow.dest))
        out["ours_default_wait"] = {"wait": DEFAULT,
                                    "burst": burst(slow, watches[-1], burst_size, 40000)}
        return out
    finally:
        for tool in tools:
            tool.stop()
        for written in watches:
            written.close()


def run_render(peers: Path, sizes: dict[str, Any], tmp: Path) -> dict[str, Any]:
    servers = {"confd": EtcdServer().start(), "ours": EtcdServer().start()}
    try:
        return {"sizes": [one_size(n, count, int(sizes["render_burst"]), servers, tmp, peers)
                          for n, count in sizes["render"]]}
    finally:
        for server in servers.values():
            server.stop()


__all__ = ["run_render"]
