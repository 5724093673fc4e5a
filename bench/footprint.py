"""Footprint before and after (issue 16): the same cold start, with the same running
containers, by the code of main before the footprint work and by this tree, in one run.

Cold start: exec of `registrator run` to the last entry visible in etcd (a watch stamps it).
RSS: the daemon's resident memory once every entry is stored."""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from env import Bench, Watch, rss_mb_and_cpu_s, stop, wait_until

# main just before the footprint work of issue 16: Docker SDK, whole inspects, eager imports.
BASELINE = "66408d6"
ROOT = Path(__file__).resolve().parents[1]
GOALS = {"cold_s": 0.6, "rss_mb": 50.0}


def baseline_code(tmp: Path) -> Path | None:
    """The baseline's `registrator` package, unpacked under tmp (None: no such commit here,
    e.g. a shallow clone)."""
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run([git, "-C", str(ROOT), "archive", "--format=tar", BASELINE,
                           "registrator"], capture_output=True, check=False)
    if done.returncode != 0:
        return None
    target = tmp / "baseline"
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def _once(b: Bench, n: int, prefix: str, code: Path | None) -> tuple[float, float, int]:
    watch = Watch(b.server, prefix + "/services/")
    t0 = time.monotonic()
    proc = b.daemon(prefix, "--ttl", "6", "--resync", "0", code=code)
    try:
        wait_until(lambda: watch.count() >= n, timeout=120, interval=0.005,
                   message="every container stored")
        took = time.monotonic() - t0
        rss, _cpu = rss_mb_and_cpu_s(proc.pid)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        threads = int(next(line.split()[1] for line in status.splitlines()
                           if line.startswith("Threads:")))
    finally:
        watch.close()
        stop(proc)
    return took, rss, threads


def compare(b: Bench, n: int, tmp: Path, rounds: int) -> dict[str, Any]:
    """Median cold start and RSS over `rounds` starts of each code, taken in turns so that
    a busy moment of the machine hits both alike."""
    variants: dict[str, Path | None] = {"after": None}
    base = baseline_code(tmp)
    if base is not None:
        variants = {"before": base, **variants}
    samples: dict[str, list[tuple[float, float, int]]] = {k: [] for k in variants}
    for i in range(rounds):
        for name, code in variants.items():
            samples[name].append(_once(b, n, f"/fp-{name}{i}-{b.tag}", code))
    out: dict[str, Any] = {"containers": n, "rounds": rounds, "baseline": BASELINE,
                           "goals": GOALS}
    for name, runs in samples.items():
        out[name] = {"cold_s": statistics.median(r[0] for r in runs),
                     "rss_mb": statistics.median(r[1] for r in runs),
                     "threads": max(r[2] for r in runs)}
    return out


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    n, after = result["containers"], result["after"]
    before = result.get("before")

    def was(key: str, unit: str) -> str:
        return f"before {before[key]:.2f} {unit}" if before else "before: n/a"

    return [
        (f"cold start, {n} running: exec -> last entry", f"{after['cold_s']:.3f} s",
         was("cold_s", "s"), f"<= {GOALS['cold_s']} s"),
        (f"RSS with {n} services", f"{after['rss_mb']:.1f} MB ({after['threads']} threads)",
         was("rss_mb", "MB"), f"<= {GOALS['rss_mb']:.0f} MB"),
    ]


__all__ = ["BASELINE", "compare", "rows"]
