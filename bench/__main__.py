"""python -m bench [--quick] [--peers DIR]: registrator against the floor, on real dockerd
and etcd (and the latency and burst again with the daemon on ZooKeeper); with --peers, also
side by side with gliderlabs/registrator and confd built into DIR (shared/peers/build.sh).

Prints the tables and writes them as JSON (bench/results/latest.json). --quick runs tiny
counts (a smoke run that keeps the code from rotting); the default is the full run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from env import Bench, Watch, stop, wait_until
from fleet import fleet
from fleet import table as fleet_table
from footprint import compare as footprint_compare
from footprint import rows as footprint_rows
from peers import FULL as PEERS_FULL
from peers import QUICK as PEERS_QUICK
from peers import not_built, run_peers
from peers_report import report as peers_report
from sections import (
    MinimalRegistrator,
    StartTimes,
    burst,
    cold_start,
    footprint,
    liveness,
    pct,
    quiet_loop,
    recovery,
    sequential_latency,
)
from serve import FULL as SERVE_FULL
from serve import QUICK as SERVE_QUICK
from serve import rows as serve_rows
from serve import serve_run
from zookeeper import rows as zookeeper_rows
from zookeeper import zookeeper_run

FULL = {"latency": 50, "burst": 200, "cold": 300, "window": 30.0, "quiet": 200, "rounds": 5,
        "fleet": (1, 5, 20), "fleet_containers": 100, "fleet_window": 10.0,
        "serve": SERVE_FULL}
QUICK = {"latency": 5, "burst": 10, "cold": 20, "window": 4.0, "quiet": 20, "rounds": 1,
         "fleet": (1, 3), "fleet_containers": 5, "fleet_window": 4.0, "serve": SERVE_QUICK}


def run(sizes: dict[str, Any], tmp: Path) -> dict[str, Any]:
    b = Bench()
    starts = StartTimes(b)
    out: dict[str, Any] = {}
    procs = []
    try:
        out["quiet_loop"] = quiet_loop(b, int(sizes["quiet"]))

        floor_prefix = f"/floor-{b.tag}"
        watch = Watch(b.server, floor_prefix + "/")
        minimal = MinimalRegistrator(b, floor_prefix)
        floor = sequential_latency(b, starts, watch, int(sizes["latency"]),
                                   lambda k, c: k.endswith("/" + c.id))
        minimal.close()
        watch.close()

        prefix = f"/lat-{b.tag}"
        watch = Watch(b.server, prefix + "/services/")
        daemon = b.daemon(prefix, "--ttl", "6", "--resync", "0", log=tmp / "daemon.log")
        procs.append(daemon)
        wait_until(lambda: b.server.view.keys(prefix + "/hosts/"), timeout=30,
                   message="the daemon ready")
        ours = sequential_latency(b, starts, watch, int(sizes["latency"]),
                                  lambda k, c: f":{c.name}:" in k)
        out["latency"] = {
            "n": len(ours),
            "floor_p50_ms": statistics.median(floor), "floor_p99_ms": pct(floor, 0.99),
            "p50_ms": statistics.median(ours), "p99_ms": pct(ours, 0.99),
            "ratio_p50": statistics.median(ours) / statistics.median(floor),
            "ratio_p99": pct(ours, 0.99) / pct(floor, 0.99),
        }
        out["liveness_few"] = liveness(b, sizes["window"], len(b.ids))
        out["footprint_idle"] = {"containers": len(b.ids), **footprint(daemon)}
        out["burst"] = burst(b, starts, watch, int(sizes["burst"]))
        out["footprint_after_burst"] = {"containers": len(b.ids), **footprint(daemon)}
        watch.close()
        stop(daemon)
        # The same two measures with the daemon on ZooKeeper, against the same floor.
        out["zookeeper"] = zookeeper_run(b, starts, sizes, floor, tmp)

        if b.ids[sizes["cold"]:]:
            b.remove(b.ids[sizes["cold"]:])  # exactly `cold` running: the 300
            time.sleep(2)  # dockerd tears networks down after a removal returns: let it

        while len(b.ids) < sizes["cold"]:
            b.run(f"fill{len(b.ids)}")
        # Before any daemon of this run holds the same containers: each start is alone.
        out["footprint"] = footprint_compare(b, len(b.ids), tmp, int(sizes["rounds"]))
        cold, (proc, cold_prefix, proxy) = cold_start(b, len(b.ids), tmp)
        procs.append(proc)
        out["cold_start"] = cold
        time.sleep(1)  # let the cold start's work settle before the idle window
        out["liveness_many"] = liveness(b, sizes["window"], len(b.ids))
        out["recovery"] = recovery(b, proc, cold_prefix, len(b.ids))
        out["footprint_many"] = {"containers": len(b.ids), **footprint(proc)}
        proxy.cut()
        stop(proc)
        b.remove(b.ids[sizes["fleet_containers"]:])
        out["fleet"] = fleet(b, sizes["fleet"], sizes["fleet_containers"],
                             sizes["fleet_window"])
        # registrator serve (issue 22): no containers needed, the same etcd.
        b.remove(list(b.ids))
        out["serve"] = serve_run(b.server, sizes["serve"], tmp)
    finally:
        for proc in procs:
            stop(proc)
        starts.close()
        b.close()
    return out


def table(result: dict[str, Any]) -> str:
    lat = result["latency"]
    rows = [
        ("event -> visible p50 (floor)", f"{lat['p50_ms']:.2f} ms ({lat['floor_p50_ms']:.2f})",
         f"{lat['ratio_p50']:.2f}x", "<= 1.25x"),
        ("event -> visible p99 (floor)", f"{lat['p99_ms']:.2f} ms ({lat['floor_p99_ms']:.2f})",
         f"{lat['ratio_p99']:.2f}x", "<= 2x"),
    ]
    q = result["quiet_loop"]
    b, c = result["burst"], result["cold_start"]
    lf, lm, r = result["liveness_few"], result["liveness_many"], result["recovery"]
    fi, fb, fm = result["footprint_idle"], result["footprint_after_burst"], \
        result["footprint_many"]
    rows += [
        ("quiet-loop inspect / put p50", f"{q['inspect_ms_p50']:.2f} / {q['put_ms_p50']:.2f} ms",
         "", "reference"),
        (f"burst of {b['containers']}: last event -> last key",
         f"{b['last_event_to_last_key_s']:.3f} s", "", "<= 1 s"),
        (f"cold start, {c['containers']} running", f"{c['all_stored_s']:.3f} s",
         f"{c['docker_api_calls']} Docker calls", "reference"),
        (f"liveness at {lf['services']} / {lm['services']} services",
         f"{lf['keepalives_per_min']:.0f} / {lm['keepalives_per_min']:.0f} keepalives/min",
         f"{lf['writes_per_min']:.0f} / {lm['writes_per_min']:.0f} writes/min", "equal"),
        (f"recovery, {r['services']} services", f"{r['all_back_s']:.3f} s", "", "<= 2 s"),
        ("RSS idle / after burst / with many",
         f"{fi['rss_mb']:.0f} / {fb['rss_mb']:.0f} / {fm['rss_mb']:.0f} MB",
         f"CPU {fi['cpu_s']:.1f} / {fb['cpu_s']:.1f} / {fm['cpu_s']:.1f} s", "reference"),
        *footprint_rows(result["footprint"]),
    ]
    rows += zookeeper_rows(result["zookeeper"])
    rows += serve_rows(result["serve"])
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{a:<{width}}  {b_:<34} {c_:<28} {d}" for a, b_, c_, d in rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    parser.add_argument("--peers", type=Path, metavar="DIR",
                        help="folder with the built gliderlabs `registrator` and `confd`")
    parser.add_argument("--peers-only", action="store_true",
                        help="with --peers: only the side-by-side, not the floor sections")
    parser.add_argument("--name-prefix", default="bench-",
                        help="name prefix of the side-by-side's containers")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    result: dict[str, Any] = {}
    why_not = not_built(args.peers)
    with tempfile.TemporaryDirectory() as tmp:
        if not (args.peers_only and why_not is None):
            result = run(sizes, Path(tmp))
        result["peers"] = {"skipped": why_not} if why_not is not None else run_peers(
            args.peers, PEERS_QUICK if args.quick else PEERS_FULL, Path(tmp), args.name_prefix)
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version(),
                         "cpus": os.cpu_count(), "quick": args.quick,
                         "duration_s": round(time.monotonic() - started, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if "latency" in result:
        print(table(result))
        print()
        print(fleet_table(result["fleet"]))
        print()
    print(peers_report(result["peers"]))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
