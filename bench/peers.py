"""The side-by-side with the peer programs (issue 24): gliderlabs/registrator against our
daemon, confd against our `render`, in one run, with the binaries built by
shared/peers/build.sh (`python -m bench --peers DIR`, DIR holding `registrator` and
`confd`). The order keeps the container count bounded: latency (etcd, then ZooKeeper) fills
the fleet towards the cold start's size; the liveness windows shrink it to the few; each
daemon's burst is removed again before the next."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from env import LABEL
from peers_daemon import Side, burst, cold, etcd_floor, fill, latency, summary
from peers_env import PeerBench, PeerEtcd
from peers_liveness import run_liveness
from peers_memory import memory
from peers_render import run_render
from sections import StartTimes
from zk_harness import ZooKeeperServer, zookeeper_available
from zookeeper import zk_floor

import registrator

FULL = {"latency": 30, "cold": 300, "cold_rounds": 2, "few": 50, "burst": 200,
        "window": 30.0, "churn_every": 1.0, "render": ((100, 100), (10000, 30)),
        "render_burst": 200}
QUICK = {"latency": 3, "cold": 8, "cold_rounds": 1, "few": 4, "burst": 4, "window": 3.0,
         "churn_every": 1.0, "render": ((20, 4),), "render_burst": 10}
BINARIES = ("registrator", "confd")


def not_built(peers: Path | None) -> str | None:
    """Why the peers cannot run (None: they can)."""
    if peers is None:
        return "not built"
    missing = [name for name in BINARIES if not (peers / name).is_file()]
    return f"not built ({', '.join(missing)} missing in {peers})" if missing else None


def versions(peers: Path) -> dict[str, str]:
    def ask(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return done.stdout + done.stderr

    # gliderlabs has no version flag: its usage message follows its start-up line.
    started = re.search(r"Starting registrator (\S+)", ask(str(peers / "registrator"), "-h"))
    return {"gliderlabs/registrator": started[1] if started else "?",
            "confd": ask(str(peers / "confd"), "-version").strip().splitlines()[0],
            "ours": registrator.__version__}


class Steps:
    """Progress on stderr (a full run takes minutes) and each step's duration."""

    def __init__(self) -> None:
        self.t0 = self.last = time.monotonic()
        self.took: dict[str, float] = {}

    def done(self, step: str) -> None:
        now = time.monotonic()
        self.took[step] = round(now - self.last, 1)
        self.last = now
        print(f"[peers +{now - self.t0:6.0f} s] {step}", file=sys.stderr, flush=True)


def run_peers(peers: Path, sizes: dict[str, Any], tmp: Path, name_prefix: str,
              ) -> dict[str, Any]:
    out: dict[str, Any] = {"versions": versions(peers), "sizes": sizes,
                           "container_label": LABEL}
    b = PeerBench(name_prefix)
    starts = StartTimes(b)
    binary = peers / "registrator"
    ga, oa = PeerEtcd(), PeerEtcd()
    zg = zo = None
    steps = Steps()
    out["step_s"] = steps.took
    try:
        etcd = [Side(b, "gliderlabs", ga, binary, tmp), Side(b, "ours", oa, binary, tmp)]
        n = int(sizes["latency"])
        out["latency"] = {"floor": etcd_floor(b, starts, n),
                          **{s.who: latency(b, starts, s, n, f"lat-{s.who[:2]}") for s in etcd}}
        steps.done("latency, etcd")
        zks: list[Side] = []
        problem = zookeeper_available()
        if problem is None:
            zg, zo = ZooKeeperServer().start(), ZooKeeperServer().start()
            zks = [Side(b, "gliderlabs", zg, binary, tmp), Side(b, "ours", zo, binary, tmp)]
            out["zk_latency"] = {
                "floor": summary(zk_floor(b, starts, zg, n)),
                **{s.who: latency(b, starts, s, n, f"zlat-{s.who[:2]}") for s in zks}}
            steps.done("latency, zookeeper")
        else:
            out["zookeeper_skipped"] = problem
        fill(b, int(sizes["cold"]))
        steps.done("fill")
        out["cold"] = cold(b, etcd, int(sizes["cold_rounds"]), "cold")
        if zks:
            out["zk_cold"] = cold(b, zks, int(sizes["cold_rounds"]), "zcold")
        steps.done("cold starts")
        out["liveness"] = run_liveness(b, binary, tmp, sizes,
                                       (zg, zo) if zg is not None and zo is not None else None)
        steps.done("liveness windows")
        out["burst"] = {s.who: burst(b, starts, s, int(sizes["burst"]), f"bu-{s.who[:2]}")
                        for s in etcd}
        steps.done("bursts, etcd")
        if zks:
            out["zk_burst"] = {s.who: burst(b, starts, s, int(sizes["burst"]),
                                            f"zbu-{s.who[:2]}") for s in zks}
            steps.done("bursts, zookeeper")
    finally:
        for store in (ga, oa, zg, zo):
            if store is not None:
                store.stop()
        starts.close()
        b.close()
        steps.done("containers removed")
    out["render"] = run_render(peers, sizes, tmp)
    steps.done("render")
    out["memory"] = memory()
    steps.done("memory")
    return out


__all__ = ["FULL", "QUICK", "not_built", "run_peers"]
