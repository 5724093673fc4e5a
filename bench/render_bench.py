"""`registrator render` at scale: 10,000 entries on 100 hosts in a private etcd, one
template over all of them; time from one change (etcd put acknowledged) to the new file in
place, and the render process's memory. Run: .venv/bin/python bench/render_bench.py"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from env import Bench, rss_mb_and_cpu_s, stop

HOSTS, PER_HOST, SERVICES = 100, 100, 100
TEMPLATE = """{% for name, entries in services.items() %}backend {{ name }}
{% for e in entries %}    server {{ e.id | hash(10) }} {{ e | hostport }} check
{% endfor %}{% endfor %}"""


def entry(i: int) -> tuple[str, str]:
    host, name = f"host{i // PER_HOST:03d}", f"svc{i % SERVICES:03d}"
    sid = f"{host}:c{i}:80"
    record = {"version": 1, "name": name, "id": sid, "address": f"10.0.{i // 250}.{i % 250}",
              "port": 8000 + i % 1000, "protocol": "tcp", "tags": ["http"], "meta": {},
              "host": host, "container_id": f"{i:064x}", "container_name": f"/c{i}",
              "image": "busybox", "health": "none", "registered_at": "2026-01-01T00:00:00Z"}
    return f"/bench/services/{name}/{sid}", json.dumps(record)


def load(b: Bench, items: list[tuple[str, str]]) -> None:
    """Write the synthetic entries, 100 to a transaction."""
    client = b.server.view.client
    for start in range(0, len(items), 100):
        client.transaction(compare=[], success=[client.transactions.put(k, v)
                                                for k, v in items[start:start + 100]],
                           failure=[])


def start_render(b: Bench, prefix: str, tmp: Path, wait: str) -> tuple[Any, Path]:
    """`registrator render` over TEMPLATE, started and waited for its first file."""
    src, dest = tmp / "t.j2", tmp / "out.cfg"
    src.write_text(TEMPLATE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "registrator", "render", "--etcd-endpoints",
         b.server.endpoint, "--prefix", prefix, "--template", str(src), "--dest",
         str(dest), "--wait", wait, "--log-level", "warning"])
    deadline = time.monotonic() + 120
    while not dest.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc, dest


def main() -> None:
    b = Bench()
    tmp = Path(tempfile.mkdtemp())
    proc = None
    try:
        client = b.server.view.client
        items = [entry(i) for i in range(HOSTS * PER_HOST)]
        load(b, items)
        proc, dest = start_render(b, "/bench", tmp, "1ms:1ms")
        latencies = []
        for n in range(20):
            key, value = items[n]
            record = json.loads(value)
            record["port"] = 20000 + n
            needle = f":{20000 + n} check"
            t0 = time.perf_counter()
            client.put(key, json.dumps(record))
            while needle not in dest.read_text():
                time.sleep(0.001)
            latencies.append((time.perf_counter() - t0) * 1000)
        rss, cpu = rss_mb_and_cpu_s(proc.pid)
        lines = len(dest.read_text().splitlines())
        print(f"entries {len(items)} on {HOSTS} hosts, rendered file {lines} lines")
        print(f"one change -> new file in place: p50 {statistics.median(latencies):.1f} ms, "
              f"max {max(latencies):.1f} ms (20 changes; goal <= 100 ms)")
        print(f"render process RSS {rss:.0f} MB (goal <= 80 MB), CPU {cpu:.1f} s")
    finally:
        if proc is not None:
            stop(proc)
        b.close()


if __name__ == "__main__":
    main()
