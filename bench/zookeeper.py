"""The same daemon on ZooKeeper (SPEC §10): event -> visible latency and a burst, measured
like the etcd run. Two floors: the etcd run's (what the same event costs end to end on etcd)
and one of its own, the minimal registrator writing one znode per event with kazoo: a
ZooKeeper write syncs its log (~3 ms here against ~1 ms for an etcd put) and a watcher learns
of it later, which no registrator on ZooKeeper can avoid. The goals are against the
ZooKeeper floor. Keys are seen through the bench's own kazoo TreeCache, independent of the
daemon's store module."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from env import Bench, stop, wait_until
from kazoo.client import KazooClient
from kazoo.recipe.cache import TreeCache, TreeEvent
from sections import MinimalRegistrator, StartTimes, burst, pct, sequential_latency
from zk_harness import ZooKeeperServer, zookeeper_available

# kazoo's reconnect attempts after the bench stops its ZooKeeper are not results.
logging.getLogger("kazoo").addHandler(logging.NullHandler())
logging.getLogger("kazoo").propagate = False


class ZkWatch:
    """First-seen wall-clock time (ns) of every znode with data under a path (Watch's twin)."""

    def __init__(self, server: ZooKeeperServer, path: str) -> None:
        self.seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._client = KazooClient(hosts=server.connect, timeout=10)
        self._client.start(timeout=10)
        self._tree = TreeCache(self._client, path)
        self._tree.listen(self._on)
        self._tree.start()

    def _on(self, event: Any) -> None:
        now = time.time_ns()
        if event.event_type in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED):
            data = event.event_data
            if data.data:
                with self._lock:
                    self.seen.setdefault(data.path, now)

    def count(self, part: str = "") -> int:
        with self._lock:
            return sum(1 for k in self.seen if part in k)

    def close(self) -> None:
        self._tree.close()
        self._client.stop()
        self._client.close()


class MinimalZkRegistrator(MinimalRegistrator):
    """The ZooKeeper floor: the minimal registrator, its write one kazoo create."""

    def __init__(self, b: Bench, prefix: str, server: ZooKeeperServer) -> None:
        self.zk = KazooClient(hosts=server.connect, timeout=10)
        self.zk.start(timeout=10)
        self.zk.ensure_path(prefix)
        super().__init__(b, prefix)

    def writer(self) -> Callable[[str, str], None]:
        def write(key: str, value: str) -> None:
            self.zk.create(key, value.encode())

        return write

    def close(self) -> None:
        super().close()
        self.zk.stop()
        self.zk.close()


def zk_floor(b: Bench, starts: StartTimes, server: ZooKeeperServer, n: int) -> list[float]:
    prefix = f"/zkfloor-{b.tag}"
    minimal = MinimalZkRegistrator(b, prefix, server)
    watch = ZkWatch(server, prefix)
    try:
        return sequential_latency(b, starts, watch, n, lambda k, c: k.endswith(c.id))
    finally:
        watch.close()
        minimal.close()


def zookeeper_run(b: Bench, starts: StartTimes, sizes: dict[str, Any], floor: list[float],
                  tmp: Path) -> dict[str, Any]:
    """Latency and burst on ZooKeeper; {"skipped": why} when it cannot run here."""
    problem = zookeeper_available()
    if problem is not None:
        return {"skipped": problem}
    server = ZooKeeperServer().start()
    try:
        zfloor = zk_floor(b, starts, server, int(sizes["latency"]))
    except BaseException:
        server.stop()
        raise
    prefix = f"/zk-{b.tag}"
    watch = ZkWatch(server, prefix + "/services")
    daemon = b.daemon(prefix, "--ttl", "6", "--resync", "0", log=tmp / "daemon-zk.log",
                      store=server.daemon_args())
    try:
        wait_until(lambda: server.view.keys(prefix + "/hosts/"), timeout=30,
                   message="the daemon on zookeeper ready")
        ours = sequential_latency(b, starts, watch, int(sizes["latency"]),
                                  lambda k, c: f":{c.name}:" in k)
        return {
            "latency": {
                "n": len(ours),
                "floor_p50_ms": statistics.median(floor), "floor_p99_ms": pct(floor, 0.99),
                "p50_ms": statistics.median(ours), "p99_ms": pct(ours, 0.99),
                "ratio_p50": statistics.median(ours) / statistics.median(floor),
                "ratio_p99": pct(ours, 0.99) / pct(floor, 0.99),
                "zk_floor_p50_ms": statistics.median(zfloor),
                "zk_floor_p99_ms": pct(zfloor, 0.99),
                "ratio_zk_p50": statistics.median(ours) / statistics.median(zfloor),
                "ratio_zk_p99": pct(ours, 0.99) / pct(zfloor, 0.99),
            },
            "burst": burst(b, starts, watch, int(sizes["burst"])),
        }
    finally:
        stop(daemon)
        watch.close()
        server.stop()


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    if "skipped" in result:
        return [("zookeeper", f"skipped: {result['skipped']}", "", "")]
    lat, b = result["latency"], result["burst"]
    return [
        ("zookeeper: event -> visible p50 (zk floor)",
         f"{lat['p50_ms']:.2f} ms ({lat['zk_floor_p50_ms']:.2f})",
         f"{lat['ratio_zk_p50']:.2f}x", "<= 1.25x"),
        ("zookeeper: event -> visible p99 (zk floor)",
         f"{lat['p99_ms']:.2f} ms ({lat['zk_floor_p99_ms']:.2f})",
         f"{lat['ratio_zk_p99']:.2f}x", "<= 2x"),
        ("zookeeper: p50 / p99 against the etcd floor", "",
         f"{lat['ratio_p50']:.2f}x / {lat['ratio_p99']:.2f}x", "reference"),
        (f"zookeeper: burst of {b['containers']}: last event -> last key",
         f"{b['last_event_to_last_key_s']:.3f} s", "", "<= 1 s"),
    ]
