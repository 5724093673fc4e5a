"""What keeping N services alive costs each daemon (issue 24): gliderlabs and ours, on etcd
and on ZooKeeper, all four running at once on the same containers, each on a store of its
own reached through a counting proxy. Idle windows at many and at few services, and one of
churn (a container started and the previous one removed every `churn_every` s). Per daemon:
store writes (etcd: v2 store writes + v3 puts and deletes; ZooKeeper: transactions),
raft commits and WAL fsyncs (etcd's /metrics), lease keepalives, bytes both ways through the
proxy, CPU seconds and RSS of the process. Windows shorter than a minute are scaled to one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from env import Proxy, stop, wait_until
from peers_daemon import Side, fill
from peers_env import PeerBench, PeerEtcd, ZkTxns, cpu_s

if TYPE_CHECKING:
    from zk_harness import ZooKeeperServer


class Member:
    """One daemon in the windows: its process, its store's counters, its keys."""

    def __init__(self, side: Side, prefix: str) -> None:
        self.side, self.prefix = side, prefix
        self.proxy: Proxy | None = None
        self.txns: ZkTxns | None = None
        if side.zk:
            server: ZooKeeperServer = side.store
            self.proxy = Proxy(("127.0.0.1", server.port))
            self.txns = ZkTxns(server.connect, f"/probe-{side.b.tag}")
            self.proc = side.start(prefix, address=f"127.0.0.1:{self.proxy.port}")
        else:
            etcd: PeerEtcd = side.store
            if etcd.proxy is None:
                raise ValueError("a liveness window needs a counted etcd")
            self.proc = side.start(prefix, address=f"127.0.0.1:{etcd.proxy.port}")
        self.name = f"{side.who} ({'zookeeper' if side.zk else 'etcd'})"
        self.foreign = 0

    def keys(self) -> list[str]:
        side = self.side
        if side.zk:
            return list(side.store.view.keys(side.root(self.prefix) + "/"))
        if side.who == "gliderlabs":
            return side.store.v2_keys(self.prefix)
        return list(side.store.server.view.keys(side.root(self.prefix) + "/"))

    def counters(self) -> dict[str, float]:
        if self.txns is not None and self.proxy is not None:
            out = {"txns": float(self.txns.read()),
                   "bytes": float(self.proxy.sent + self.proxy.received)}
        else:
            out = self.side.store.counters()
        out["cpu_s"] = cpu_s(self.proc.pid)
        return out

    def close(self) -> None:
        stop(self.proc)
        if self.proxy is not None:
            self.proxy.cut()
        if self.txns is not None:
            self.txns.close()


def _rates(before: dict[str, float], after: dict[str, float], seconds: float,
           member: Member) -> dict[str, float]:
    per_min = {k: (after[k] - before[k]) * 60 / seconds for k in before}
    if "txns" in per_min:  # each reading is one transaction of our own
        writes = per_min.pop("txns") - 60 / seconds
    else:
        writes = per_min["v2_writes"] + per_min["v3_puts"] + per_min["v3_deletes"]
    status = Path(f"/proc/{member.proc.pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:")) / 1024
    keys = member.keys()
    return {"writes_per_min": max(0.0, writes), **{f"{k}_per_min": v for k, v in per_min.items()
                                                   if k != "txns"},
            "rss_mb": rss, "entries": member.side.mine(keys), "entries_total": len(keys),
            # Entries of containers already removed (gliderlabs misses events in a burst of
            # removals) and still kept alive: they cost writes like the others.
            "stale": max(0, len(keys) - member.side.mine(keys) - member.foreign)}


def window(members: list[Member], seconds: float,
           during: Callable[[float], int] | None = None) -> dict[str, Any]:
    """Counters of every member over `seconds`, idle or while `during` runs (it returns
    how many Docker events it caused)."""
    before = [m.counters() for m in members]
    t0 = time.monotonic()
    events = during(seconds) if during is not None else 0
    time.sleep(max(0.0, t0 + seconds - time.monotonic()))  # the window itself
    took = time.monotonic() - t0
    after = [m.counters() for m in members]
    return {"seconds": took, "events": events,
            **{m.name: _rates(x, y, took, m) for m, x, y in zip(members, before, after,
                                                               strict=True)}}


def churner(b: PeerBench, every: float) -> Callable[[float], int]:
    """Every `every` s one container started and the one before it removed: two events
    (start; die and destroy) a tick, bounded by the window's length."""

    def run(seconds: float) -> int:
        t0, prev, events = time.monotonic(), None, 0
        for i in range(int(seconds / every)):
            time.sleep(max(0.0, t0 + i * every - time.monotonic()))
            c = b.run(f"churn{i}")
            events += 1
            if prev is not None:
                b.remove([prev])
                events += 1
            prev = c.id
        return events

    return run


def _settle(members: list[Member], n: int) -> None:
    """Each member back to n of ours (plus the foreign entries it had): the removals'
    deletes done before the window. Not fatal: another tester's containers may come."""
    deadline = time.monotonic() + 20  # a missed event's entry never goes: do not wait on it
    for m in members:
        while len(m.keys()) > n + m.foreign and time.monotonic() < deadline:
            time.sleep(0.2)


def run_liveness(b: PeerBench, binary: Path, tmp: Path, sizes: dict[str, Any],
                 zks: tuple[ZooKeeperServer, ZooKeeperServer] | None) -> dict[str, Any]:
    gc, oc = PeerEtcd(counted=True), PeerEtcd(counted=True)
    members: list[Member] = []
    try:
        sides = [Side(b, "gliderlabs", gc, binary, tmp), Side(b, "ours", oc, binary, tmp)]
        if zks is not None:
            sides += [Side(b, "gliderlabs", zks[0], binary, tmp),
                      Side(b, "ours", zks[1], binary, tmp)]
        n = len(b.ids)
        members.extend(Member(side, f"/live-{side.who[:2]}-{b.tag}") for side in sides)
        for m in members:
            wait_until(lambda m=m: m.side.mine(m.keys()) >= n, timeout=120, interval=0.2,
                       message=f"{m.name} to store {n} entries")
            m.foreign = len(m.keys()) - n
        time.sleep(2)  # the start's own work done: the window is the steady state
        seconds = float(sizes["window"])
        out: dict[str, Any] = {"many": {"services": n, **window(members, seconds)}}
        out["churn"] = {"services": n, "every_s": sizes["churn_every"],
                        **window(members, seconds, churner(b, float(sizes["churn_every"])))}
        fill(b, int(sizes["few"]))
        _settle(members, len(b.ids))
        time.sleep(2)
        out["few"] = {"services": len(b.ids), **window(members, seconds)}
        return out
    finally:
        for m in members:
            m.close()
        gc.stop()
        oc.stop()


__all__ = ["run_liveness"]
