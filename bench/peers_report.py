"""The peers section as printed tables, and the issue's goals with PASS or MISS (a miss is
printed like a pass: the figures are the point, not the verdict)."""

from __future__ import annotations

from typing import Any

from peers_memory import rows as memory_rows

GL, OURS = "gliderlabs", "ours"


def grid(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    return "\n".join(["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                      for r in [head]] + [line] + [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows])


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def daemon_rows(r: dict[str, Any], *, zk: bool) -> list[list[str]]:
    lat, cold, burst = (r["zk_latency"], r["zk_cold"], r["zk_burst"]) if zk else \
        (r["latency"], r["cold"], r["burst"])
    rows = [[f"event -> entry visible {q[:3]} (ms)", f"{lat[GL][q]:.2f}",
             f"{lat[OURS][q]:.2f}", f"{lat['floor'][q]:.2f}", _ratio(lat[OURS][q], lat[GL][q])]
            for q in ("p50_ms", "p99_ms")]
    rows.append([f"cold start, {cold['containers']} running: exec -> last entry (s)",
                 f"{cold[GL]['cold_s']:.3f}", f"{cold[OURS]['cold_s']:.3f}", "",
                 _ratio(cold[OURS]["cold_s"], cold[GL]["cold_s"])])
    rows.append([f"RSS with {cold['containers']} entries, right after (MB)",
                 f"{cold[GL]['rss_mb']:.1f}", f"{cold[OURS]['rss_mb']:.1f}", "",
                 _ratio(cold[OURS]["rss_mb"], cold[GL]["rss_mb"])])
    b = burst[GL]["containers"]
    rows.append([f"burst of {b} starts: entries stored", str(burst[GL]["stored"]),
                 str(burst[OURS]["stored"]), "", ""])
    rows.append([f"burst of {b} starts: last event -> last entry (s)",
                 f"{burst[GL]['last_event_to_last_key_s']:.3f}",
                 f"{burst[OURS]['last_event_to_last_key_s']:.3f}", "",
                 _ratio(burst[OURS]["last_event_to_last_key_s"],
                        burst[GL]["last_event_to_last_key_s"])])
    return rows


LIVE_FIELDS = [("writes_per_min", "store writes", "{:.0f}"),
               ("commits_per_min", "raft commits", "{:.0f}"),
               ("fsyncs_per_min", "WAL fsyncs", "{:.0f}"),
               ("keepalives_per_min", "lease keepalives", "{:.0f}"),
               ("bytes_per_min", "bytes on the wire (kB)", "{:.1f}"),
               ("cpu_s_per_min", "CPU (s)", "{:.2f}"),
               ("rss_mb", "RSS at the end (MB)", "{:.1f}")]


def liveness_rows(live: dict[str, Any], store: str) -> list[list[str]]:
    rows = []
    for window in ("few", "many", "churn"):
        w = live[window]
        gl, ours = w[f"{GL} ({store})"], w[f"{OURS} ({store})"]
        what = f"churn ({w['events']} events)" if window == "churn" else "idle"
        rows.append([f"{w['services']} services, {what}: entries held (stale)",
                     f"{gl['entries_total']} ({gl['stale']})",
                     f"{ours['entries_total']} ({ours['stale']})", ""])
        for key, label, fmt in LIVE_FIELDS:
            if key not in gl:
                continue
            scale = 1000 if key == "bytes_per_min" else 1
            rows.append([f"{w['services']} services, {what}: {label}",
                         fmt.format(gl[key] / scale), fmt.format(ours[key] / scale),
                         _ratio(ours[key], gl[key])])
    return rows


def render_rows(render: dict[str, Any]) -> list[list[str]]:
    rows = []
    for size in render["sizes"]:
        n, c, o = size["entries"], size["confd"], size["ours"]
        for key, label, fmt in (("p50_ms", "change -> file p50 (ms)", "{:.1f}"),
                                ("p99_ms", "change -> file p99 (ms)", "{:.1f}"),
                                ("cpu_s_per_1000", "CPU per 1,000 changes (s)", "{:.2f}"),
                                ("rss_mb", "RSS (MB)", "{:.1f}")):
            rows.append([f"{n} entries: {label}", fmt.format(c[key]), fmt.format(o[key]),
                         _ratio(o[key], c[key])])
        cb, ob, slow = c["burst"], o["burst"], size["ours_default_wait"]["burst"]
        rows.append([f"{n} entries: file writes per burst of {cb['changes']} changes",
                     str(cb["writes"]), (f"{ob['writes']} ({slow['writes']} at --wait "
                     f"{size['ours_default_wait']['wait']})"), ""])
        rows.append([f"{n} entries: burst, last change -> final file (ms)",
                     f"{cb['last_change_to_file_ms']:.0f}",
                     (f"{ob['last_change_to_file_ms']:.0f} "
                     f"({slow['last_change_to_file_ms']:.0f})"), ""])
    return rows


def goals(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(goal, met, the figures behind it)."""
    lat, cold = r["latency"], r["cold"]
    few = r["liveness"]["few"]
    gl_live, our_live = few[f"{GL} (etcd)"], few[f"{OURS} (etcd)"]
    out = [
        ("event -> visible p50 <= gliderlabs' p50 (etcd)",
         lat[OURS]["p50_ms"] <= lat[GL]["p50_ms"],
         f"{lat[OURS]['p50_ms']:.2f} vs {lat[GL]['p50_ms']:.2f} ms"),
        (f"cold start ({cold['containers']} running) <= 0.5x gliderlabs'",
         cold[OURS]["cold_s"] <= 0.5 * cold[GL]["cold_s"],
         (f"{cold[OURS]['cold_s']:.3f} vs {cold[GL]['cold_s']:.3f} s "
         f"({_ratio(cold[OURS]['cold_s'], cold[GL]['cold_s'])})")),
        (f"liveness writes at {few['services']} services <= 1/50 of gliderlabs'",
         our_live["writes_per_min"] <= gl_live["writes_per_min"] / 50,
         f"{our_live['writes_per_min']:.1f} vs {gl_live['writes_per_min']:.1f} per min"),
    ]
    for size in r["render"]["sizes"]:
        c, o = size["confd"], size["ours"]
        out.append((f"render change -> file p50 <= confd's ({size['entries']} entries)",
                    o["p50_ms"] <= c["p50_ms"], f"{o['p50_ms']:.1f} vs {c['p50_ms']:.1f} ms"))
        out.append((f"render CPU per change <= confd's ({size['entries']} entries)",
                    o["cpu_s_per_1000"] <= c["cpu_s_per_1000"],
                    f"{o['cpu_s_per_1000']:.2f} vs {c['cpu_s_per_1000']:.2f} s per 1,000"))
    out.append((f"stretch: RSS <= 2x gliderlabs' ({few['services']} services, idle, etcd)",
                our_live["rss_mb"] <= 2 * gl_live["rss_mb"],
                (f"{our_live['rss_mb']:.1f} vs {gl_live['rss_mb']:.1f} MB "
                f"({_ratio(our_live['rss_mb'], gl_live['rss_mb'])})")))
    return out


def report(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"peers: {r['skipped']}"
    v = r["versions"]
    parts = [(f"peers: gliderlabs/registrator {v['gliderlabs/registrator']}, {v['confd']}, "
             f"ours {v['ours']}"),
             "", grid(["daemons on etcd", GL, OURS, "floor", "ours/gl"], daemon_rows(r, zk=False))]
    if "zk_latency" in r:
        parts += ["", grid(["daemons on ZooKeeper", GL, OURS, "zk floor", "ours/gl"],
                           daemon_rows(r, zk=True))]
    else:
        parts += ["", f"zookeeper: skipped: {r.get('zookeeper_skipped')}"]
    live = r["liveness"]
    parts += ["", grid(["liveness per minute, etcd (windows scaled)", GL, OURS, "ours/gl"],
                       liveness_rows(live, "etcd"))]
    if f"{GL} (zookeeper)" in live["few"]:
        parts += ["", grid(["liveness per minute, ZooKeeper (writes = transactions)", GL,
                            OURS, "ours/gl"], liveness_rows(live, "zookeeper"))]
    parts += ["", grid(["render against confd -watch (etcdv3)", "confd", OURS, "ours/confd"],
                       render_rows(r["render"]))]
    if "memory" in r:
        rss = live["few"][f"{OURS} (etcd)"]["rss_mb"]
        parts += ["", grid(["where our daemon's memory goes (stretch goal)", "MB or ms"],
                           memory_rows(r["memory"], rss))]
    parts += ["", "goals (issue 24):"]
    parts += [f"  {'PASS' if ok else 'MISS'}  {goal}: {why}" for goal, ok, why in goals(r)]
    return "\n".join(parts)


__all__ = ["goals", "report"]
