"""`render` at fleet size (issue 16 item 4): 20,000 entries on 200 hosts, then one change
every 10 ms for 10 s (1,000 changes, a bounded loop). Does render keep up: does the final
file match the registry within MAX (--wait 200ms:2s) of the last change? Its CPU and RSS.
Run: .venv/bin/python bench/render_fleet.py [--quick]"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from env import Bench, rss_mb_and_cpu_s, stop
from render_bench import load, start_render

MAX_WAIT = 2.0


def entry(i: int, per_host: int) -> tuple[str, dict[str, object]]:
    host, name = f"host{i // per_host:03d}", f"svc{i % 100:03d}"
    sid = f"{host}:c{i}:80"
    return f"/fleet/services/{name}/{sid}", {
        "version": 1, "name": name, "id": sid, "address": f"10.{i // 62500}.{i // 250 % 250}."
        f"{i % 250}", "port": 8000 + i % 1000, "protocol": "tcp", "tags": ["http"], "meta": {},
        "host": host, "container_id": f"{i:064x}", "container_name": f"/c{i}",
        "image": "busybox", "health": "none", "registered_at": "2026-01-01T00:00:00Z"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total, changes, every = (2000, 100, 0.01) if args.quick else (20000, 1000, 0.01)
    b = Bench()
    tmp = Path(tempfile.mkdtemp())
    proc = None
    try:
        client = b.server.view.client
        items = [entry(i, 100) for i in range(total)]
        load(b, [(k, json.dumps(v)) for k, v in items])
        proc, dest = start_render(b, "/fleet", tmp, f"200ms:{MAX_WAIT}s")
        _, cpu_before = rss_mb_and_cpu_s(proc.pid)
        final: dict[int, int] = {}
        t0 = time.monotonic()
        for n in range(changes):  # bounded: `changes` puts, one per `every` seconds
            i = (n * 7919) % total
            key, record = items[i]
            record = {**record, "port": 30000 + n}
            client.put(key, json.dumps(record))
            final[i] = 30000 + n
            time.sleep(max(0.0, t0 + (n + 1) * every - time.monotonic()))
        last = time.monotonic()
        needles = [f":{port} check" for port in final.values()]
        matched = None
        while time.monotonic() < last + MAX_WAIT + 5:
            text = dest.read_text()
            if all(n in text for n in needles):
                matched = time.monotonic() - last
                break
            time.sleep(0.02)
        rss, cpu = rss_mb_and_cpu_s(proc.pid)
        print(f"entries {total}, {changes} changes over {changes * every:.0f} s "
              f"({1 / every:.0f}/s)")
        print("final file matches the registry: "
              + (f"{matched:.2f} s after the last change (goal <= {MAX_WAIT} s)"
                 if matched is not None else "NO"))
        print(f"render CPU during the changes {cpu - cpu_before:.1f} s, RSS {rss:.0f} MB")
    finally:
        if proc is not None:
            stop(proc)
        b.close()


if __name__ == "__main__":
    main()
