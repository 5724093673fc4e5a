"""Fleet simulation (issue 16): N daemons with distinct --hostname against one etcd and one
dockerd, each registering the same containers under its own host name, --resync 2s. Each
daemon talks to etcd through a proxy of its own that counts bytes and gRPC calls each way;
etcd's own metrics give the total. The question: does what one host costs the store grow
with the fleet? (It used to: every resync read the whole registry.)"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from env import Bench, Proxy, stop, wait_until
from harness import grpc_calls

RESYNC_S = 2.0


def etcd_totals(b: Bench) -> dict[str, float]:
    """Bytes etcd sent and received and calls it handled, over all clients."""
    with urllib.request.urlopen(f"{b.server.endpoint}/metrics", timeout=5) as r:  # noqa: S310
        text = r.read().decode()
    out = {"sent": 0.0, "received": 0.0, "calls": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        value = float(line.rsplit(" ", 1)[1]) if not line.startswith("#") else 0.0
        if name == "etcd_network_client_grpc_sent_bytes_total":
            out["sent"] += value
        elif name == "etcd_network_client_grpc_received_bytes_total":
            out["received"] += value
        elif name == "grpc_server_started_total":
            out["calls"] += value
    return out


def whole_prefix_bytes(b: Bench, prefix: str) -> int:
    """What one resync read before the host index: every entry under the prefix."""
    return sum(len(m.key) + len(v) for v, m in b.server.view.client.get_prefix(prefix + "/"))


def one_fleet(b: Bench, n: int, containers: int, window: float) -> dict[str, Any]:
    prefix = f"/fleet{n}-{b.tag}"
    proxies = [Proxy(("127.0.0.1", b.server.port), requests=grpc_calls) for _ in range(n)]
    procs = []
    try:
        for i, proxy in enumerate(proxies):
            # --explicit: only the bench's own (labelled) containers, not whatever else runs.
            procs.append(b.daemon(prefix, "--resync", f"{RESYNC_S}s", "--ttl", "30", "--explicit",
                                  "--etcd-endpoints", f"http://127.0.0.1:{proxy.port}",
                                  "--hostname", f"fleet-{i}"))
        wait_until(lambda: len(b.server.view.keys(prefix + "/services/")) >= n * containers,
                   timeout=120 + 10 * n, message=f"{n} x {containers} entries")
        time.sleep(RESYNC_S)  # one resync period to settle after the initial writes
        before = etcd_totals(b)
        for proxy in proxies:
            proxy.reset_counts()
        time.sleep(window)  # the measurement window
        after = etcd_totals(b)
        resyncs = window / RESYNC_S
        per = [(p.sent, p.received, p.requests) for p in proxies]
        entries = len(b.server.view.keys(prefix + "/services/"))
        return {
            "daemons": n, "entries": entries, "window_s": window,
            "per_daemon_sent_per_resync": sum(s for s, _, _ in per) / n / resyncs,
            "per_daemon_read_per_resync": sum(r for _, r, _ in per) / n / resyncs,
            "per_daemon_calls_per_resync": sum(c for _, _, c in per) / n / resyncs,
            "max_daemon_read_per_resync": max(r for _, r, _ in per) / resyncs,
            "etcd_sent_per_min": (after["sent"] - before["sent"]) * 60 / window,
            "etcd_received_per_min": (after["received"] - before["received"]) * 60 / window,
            "etcd_calls_per_min": (after["calls"] - before["calls"]) * 60 / window,
            "whole_prefix_bytes": whole_prefix_bytes(b, prefix),
        }
    finally:
        for proc in procs:
            stop(proc)
        for proxy in proxies:
            proxy.cut()
        b.server.view.client.delete_prefix(prefix + "/")


def fleet(b: Bench, sizes: tuple[int, ...], containers: int, window: float) -> dict[str, Any]:
    while len(b.ids) < containers:
        b.run(f"fleet{len(b.ids)}")
    runs = [one_fleet(b, n, containers, window) for n in sizes]
    base = runs[0]["per_daemon_read_per_resync"] + runs[0]["per_daemon_sent_per_resync"]
    for run in runs:
        run["ratio_to_one"] = (run["per_daemon_read_per_resync"]
                               + run["per_daemon_sent_per_resync"]) / base
    return {"containers": containers, "resync_s": RESYNC_S, "runs": runs}


def table(result: dict[str, Any]) -> str:
    head = (f"{'daemons':>7} {'entries':>7} {'read/resync':>12} {'sent/resync':>12} "
            f"{'calls/resync':>12} {'vs N=1':>7} {'etcd out/min':>13} {'whole prefix':>13}")
    rows = [head] + [
        f"{r['daemons']:>7} {r['entries']:>7} {r['per_daemon_read_per_resync']:>10.0f} B "
        f"{r['per_daemon_sent_per_resync']:>10.0f} B {r['per_daemon_calls_per_resync']:>12.1f} "
        f"{r['ratio_to_one']:>6.2f}x {r['etcd_sent_per_min'] / 1e6:>10.2f} MB "
        f"{r['whole_prefix_bytes'] / 1e3:>10.0f} kB"
        for r in result["runs"]]
    rows.append("goal: per-daemon bytes per resync at the largest N within 1.2x of N=1")
    return "\n".join(rows)
