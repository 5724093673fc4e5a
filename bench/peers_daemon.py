"""Our daemon against gliderlabs/registrator (issue 24), on the same dockerd and the same
containers, each daemon on an etcd of its own (and then a ZooKeeper of its own): event ->
visible latency (with the floor's), cold start, burst. Each is measured with one daemon
running at a time, so neither takes CPU from the other; the liveness windows, where both
are idle or see the same churn, are in peers_liveness.py."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from env import Watch, stop, wait_until
from peers_env import GLIDERLABS_ETCD, OURS, PeerBench, V2Watch, gliderlabs
from sections import MinimalRegistrator, StartTimes, pct, sequential_latency
from zk_harness import ZooKeeperServer
from zookeeper import ZkWatch

KeyOf = Callable[[str, Any], bool]
QUIET = 5.0  # s without a new entry after a burst: the rest are not coming


class Side:
    """One daemon on one store: how to start it on a prefix, and how to watch what it
    writes there (its own key layout, seen through the store directly)."""

    def __init__(self, b: PeerBench, who: str, store: Any, binary: Path, tmp: Path) -> None:
        self.b, self.who, self.store, self.binary, self.tmp = b, who, store, binary, tmp
        self.zk = isinstance(store, ZooKeeperServer)
        self._ports: dict[str, str] = {}

    def start(self, prefix: str, address: str | None = None) -> Any:
        """The daemon on `prefix`; `address` (host:port) overrides the store's own."""
        log = self.tmp / f"{self.who}-{'zk' if self.zk else 'etcd'}.log"
        if self.who == "gliderlabs":
            if self.zk:
                return gliderlabs(self.binary, f"zookeeper://{address or self.store.connect}"
                                  f"{prefix}", log)
            host = address or f"127.0.0.1:{self.store.server.port}"
            return gliderlabs(self.binary, f"etcd://{host}{prefix}", log, *GLIDERLABS_ETCD)
        if self.zk:
            store = ["--zookeeper", address or self.store.connect]
        else:
            store = ["--etcd-endpoints", f"http://{address}" if address else self.store.direct]
        return self.b.daemon(prefix, *OURS, log=log, store=store)

    def root(self, prefix: str) -> str:
        """Where the entries go: gliderlabs right under the prefix, ours under services/."""
        return prefix if self.who == "gliderlabs" else prefix + "/services"

    def watch(self, prefix: str) -> Any:
        if self.zk:
            return ZkWatch(self.store, self.root(prefix))
        if self.who == "gliderlabs":
            return V2Watch(self.store, prefix)
        return Watch(self.store.server, self.root(prefix) + "/")

    def port(self, cid: str) -> str:
        if cid not in self._ports:
            info = self.b.client.api.inspect_container(cid)
            self._ports[cid] = str(info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        return self._ports[cid]

    def key_of(self) -> KeyOf:
        """Whether a key is a given container's: gliderlabs' ZooKeeper keys hold only
        ip:published port; every other layout holds the container's name."""
        if self.zk and self.who == "gliderlabs":
            return lambda k, c: k.endswith(f":{self.port(c.id)}")
        return lambda k, c: f":{c.name}:" in k

    def mine(self, keys: Any) -> int:
        """How many of these keys are this run's running containers (a shared dockerd
        has others; a removed container's entry may stay: gliderlabs misses events)."""
        if self.zk and self.who == "gliderlabs":
            ports = {f":{self.port(cid)}" for cid in self.b.ids}
            return sum(1 for k in keys if k[k.rfind(":"):] in ports)
        names = {f":{self.b.names[cid]}:" for cid in self.b.ids}
        return sum(1 for k in keys if k[k.find(":"):k.rfind(":") + 1] in names)

    def ready(self, watch: Any, n: int, timeout: float = 120) -> None:
        wait_until(lambda: self.mine(list(watch.seen)) >= n, timeout=timeout, interval=0.005,
                   message=f"{self.who} to store {n} entries")


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p99_ms": pct(ms, 0.99)}


def latency(b: PeerBench, starts: StartTimes, side: Side, n: int, tag: str) -> dict[str, float]:
    """n containers started one at a time with this daemon alone running."""
    prefix = f"/{tag}-{b.tag}"
    watch = side.watch(prefix)
    proc = side.start(prefix)
    try:
        side.ready(watch, len(b.ids))
        return summary(sequential_latency(b, starts, watch, n, side.key_of()))
    finally:
        stop(proc)
        watch.close()


def etcd_floor(b: PeerBench, starts: StartTimes, n: int) -> dict[str, float]:
    prefix = f"/floor-{b.tag}"
    watch = Watch(b.server, prefix + "/")
    minimal = MinimalRegistrator(b, prefix)
    try:
        return summary(sequential_latency(b, starts, watch, n,
                                          lambda k, c: k.endswith("/" + c.id)))
    finally:
        minimal.close()
        watch.close()


def cold(b: PeerBench, sides: list[Side], rounds: int, tag: str) -> dict[str, Any]:
    """exec of each daemon -> the last of the running containers visible, `rounds` times,
    the daemons in turns (a busy moment of the machine hits both alike); median."""
    n = len(b.ids)
    took: dict[str, list[float]] = {s.who: [] for s in sides}
    rss: dict[str, float] = {}
    for i in range(rounds):
        for side in sides:
            prefix = f"/{tag}{i}-{side.who[:2]}-{b.tag}"
            watch = side.watch(prefix)
            t0 = time.monotonic()
            proc = side.start(prefix)
            try:
                side.ready(watch, n)
                took[side.who].append(time.monotonic() - t0)
                rss[side.who] = _rss_mb(proc.pid)
            finally:
                stop(proc)
                watch.close()
    return {"containers": n, "rounds": rounds,
            **{who: {"cold_s": statistics.median(t), "runs_s": t, "rss_mb": rss[who]}
               for who, t in took.items()}}


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")) / 1024


def burst(b: PeerBench, starts: StartTimes, side: Side, n: int, tag: str) -> dict[str, float]:
    """The daemon alone, every running container stored; then n started as fast as Docker
    allows (8 at a time): last start event -> last of their entries visible. An entry that
    never comes (gliderlabs drops Docker events it is not ready for: see
    docs/performance-peers.md) is counted as missing once nothing new came for QUIET s.
    The n are removed afterwards (the daemon stopped) so each daemon's burst starts alike."""
    prefix = f"/{tag}-{b.tag}"
    watch = side.watch(prefix)
    proc = side.start(prefix)
    made: list[Any] = []
    try:
        side.ready(watch, len(b.ids))
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda i: b.run(f"burst{i}"), range(n)))
        wait_until(lambda: all(c.id in starts.at for c in made), timeout=120,
                   message="every start event")
        key_of = side.key_of()
        found: dict[str, str] = {}
        progress = [time.monotonic()]

        def settled() -> bool:
            for c in made:
                if c.id not in found:
                    key = next((k for k in list(watch.seen) if key_of(k, c)), None)
                    if key is not None:
                        found[c.id] = key
                        progress[0] = time.monotonic()
            return len(found) == n or time.monotonic() - progress[0] > QUIET

        wait_until(settled, timeout=180, interval=0.01, message=f"{side.who}'s burst keys")
        last_start = max(starts.at[c.id] for c in made)
        last_key = max((watch.seen[k] for k in found.values()), default=last_start)
        return {"containers": n, "stored": len(found),
                "last_event_to_last_key_s": max(0, last_key - last_start) / 1e9}
    finally:
        stop(proc)
        watch.close()
        b.remove([c.id for c in made])


def fill(b: PeerBench, n: int) -> None:
    """Exactly n running: the cold start's (and the liveness window's) fleet."""
    if len(b.ids) > n:
        b.remove(b.ids[n:])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: b.run(f"fill{i}"), range(len(b.ids), n)))
    time.sleep(2)  # dockerd tears networks down after a removal returns: let it


__all__ = ["Side", "burst", "cold", "etcd_floor", "fill", "latency", "summary"]
