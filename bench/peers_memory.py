"""Where our daemon's memory goes (issue 24's stretch goal, RSS <= 2x gliderlabs'): the
resident size of a bare interpreter, of each dependency `registrator run` loads, alone, and
of everything `run` imports on etcd and on ZooKeeper; what tracemalloc sees allocated by
those imports, by package; and `python -X importtime`'s cost of the same imports. Each
figure from a fresh interpreter (a subprocess), so one import's memory is not another's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUN = ["registrator.cli", "registrator.logs", "registrator.daemon", "registrator.docker_source",
       "registrator.settings"]
ETCD, ZK = [*RUN, "registrator.stores.etcd"], [*RUN, "registrator.stores.zookeeper"]
ALONE = ["grpc", "pyetcd", "kazoo.client", "structlog", "click"]

PROBE = """
import json, sys, tracemalloc
trace = sys.argv[1] == "1"
if trace:
    tracemalloc.start(16)
for name in sys.argv[2:]:
    __import__(name)
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
out = {"rss_mb": rss}
if trace:
    by: dict[str, int] = {}
    for stat in tracemalloc.take_snapshot().statistics("traceback"):
        # The innermost frame of a real file: importlib's frozen frames load every module.
        f = next((fr.filename for fr in reversed(stat.traceback)
                  if not fr.filename.startswith("<")), "?")
        key = f.split("site-packages/")[1].split("/")[0] if "site-packages/" in f else (
            "registrator" if "/registrator/" in f else "stdlib")
        key = key.removesuffix(".py")
        by[key] = by.get(key, 0) + stat.size
    out["traced_total_mb"] = sum(by.values()) / 2**20
    out["traced_mb"] = {k: v / 2**20 for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:8]}
print(json.dumps(out))
"""


def _probe(modules: list[str], *, trace: bool = False) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE, "1" if trace else "0", *modules],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(done.stdout))


def import_times(modules: list[str]) -> dict[str, float]:
    """Import time (ms, the modules' own) summed by top-level package."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "; ".join(f"import {m}" for m in modules)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    tops: dict[str, float] = {}
    total = 0.0
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m is None:
            continue
        total += int(m[1]) / 1000
        top = m[4].split(".")[0]
        tops[top] = tops.get(top, 0.0) + int(m[1]) / 1000
    ranked = dict(sorted(tops.items(), key=lambda kv: -kv[1])[:8])
    return {"total_ms": total, **ranked}


def memory() -> dict[str, Any]:
    return {
        "interpreter_rss_mb": _probe([])["rss_mb"],
        "alone_rss_mb": {name: _probe([name])["rss_mb"] for name in ALONE},
        "run_etcd": {**_probe(ETCD, trace=True), **_probe(ETCD)},
        "run_zookeeper": _probe(ZK),
        "import_ms_etcd": import_times(ETCD),
    }


def rows(m: dict[str, Any], daemon_rss_mb: float) -> list[list[str]]:
    etcd = m["run_etcd"]
    out = [["bare interpreter", f"{m['interpreter_rss_mb']:.1f}"],
           *[[f"interpreter + {k} alone", f"{v:.1f}"] for k, v in m["alone_rss_mb"].items()],
           ["everything `run` imports, etcd", f"{etcd['rss_mb']:.1f}"],
           ["everything `run` imports, ZooKeeper", f"{m['run_zookeeper']['rss_mb']:.1f}"],
           ["the etcd daemon idle (liveness window)", f"{daemon_rss_mb:.1f}"]]
    out += [["tracemalloc after the etcd imports: total", f"{etcd['traced_total_mb']:.1f}"]]
    out += [[f"tracemalloc after the etcd imports: {k}", f"{v:.1f}"]
            for k, v in etcd["traced_mb"].items()]
    times = m["import_ms_etcd"]
    out += [["import time, etcd run path, total (ms)", f"{times['total_ms']:.0f}"]]
    out += [[f"import time: {k} (ms)", f"{v:.0f}"]
            for k, v in list(times.items())[1:7]]
    return out


__all__ = ["memory", "rows"]
