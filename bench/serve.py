"""The serve section of `python -m bench` (issue 22): `registrator serve` against floors
measured in the same run. Alone: `python bench/serve.py [--quick]`.

- DNS answers/s of serve against dnsmasq serving the same records from its own config, both
  measured by dnsperf (A and SRV questions for every service), best of the rounds each.
- Store change -> DNS answer changed and -> HTTP answer changed (a held blocking read),
  p50/p99, against a bare etcd watch seeing the same put.
- HTTP GET /v1/services/NAME requests/s against a trivial route on the same server stack.
- RSS of serve holding many entries, and its CPU while nothing changes."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dns.message
from env import Watch, rss_mb_and_cpu_s, stop, wait_until
from harness import EtcdServer
from serve_tools import (
    DNSMASQ,
    DNSPERF,
    DOMAIN,
    Serve,
    dns_ask,
    dnsmasq_config,
    dnsperf,
    entry,
    free_port,
    http_get,
    http_load,
    put_entries,
    start_dnsmasq,
    trivial_http,
)

FULL = {"services": 1000, "per_service": 2, "dnsperf_s": 10, "rounds": 2, "latency": 50,
        "http_s": 10, "rss_entries": 20000, "idle_s": 10}
QUICK = {"services": 30, "per_service": 2, "dnsperf_s": 2, "rounds": 1, "latency": 5,
         "http_s": 2, "rss_entries": 300, "idle_s": 2}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def registry(n_services: int, per: int, tag: str) -> list[dict[str, Any]]:
    return [entry(f"{tag}{s:05d}", k, s * per + k) for s in range(n_services)
            for k in range(per)]


def _answers(port: int, name: str, rdtype: str) -> set[str]:
    return {rd.to_text().lower() for rrset in dns_ask(port, name, rdtype).answer
            for rd in rrset}


def dns_throughput(serve: Serve, entries: list[dict[str, Any]], sizes: dict[str, Any],
                   tmp: Path) -> dict[str, Any]:
    if DNSPERF is None or DNSMASQ is None:
        return {"skipped": "dnsperf or dnsmasq is not installed"}
    names = sorted({e["name"] for e in entries})
    queries = tmp / "queries.txt"
    queries.write_text("".join(f"{n}.service.{DOMAIN} A\n_{n}._tcp.service.{DOMAIN} SRV\n"
                               for n in names))
    # dnsmasq reads its files as its own user: a directory of their own it can enter.
    conf = Path(tempfile.mkdtemp(prefix="registrator-bench-dnsmasq-"))
    dnsmasq_config(conf, entries)
    port = free_port()
    try:
        proc = start_dnsmasq(conf, port)
    except BaseException:
        shutil.rmtree(conf, ignore_errors=True)
        raise
    try:
        # The same records from both (else the comparison means nothing).
        for question in ((f"{names[-1]}.service.{DOMAIN}", "A"),
                         (f"_{names[-1]}._tcp.service.{DOMAIN}", "SRV")):
            ours, theirs = _answers(serve.dns, *question), _answers(port, *question)
            if ours != theirs:
                raise RuntimeError(f"serve and dnsmasq differ on {question}: {ours} {theirs}")
        for target in (serve.dns, port):  # warm both (serve builds each answer once)
            dnsperf(target, queries, 1)
        runs: dict[str, list[float]] = {"serve": [], "dnsmasq": []}
        lost: dict[str, float] = {"serve": 0.0, "dnsmasq": 0.0}
        for _ in range(int(sizes["rounds"])):
            for who, target in (("serve", serve.dns), ("dnsmasq", port)):
                result = dnsperf(target, queries, float(sizes["dnsperf_s"]))
                runs[who].append(result["qps"])
                lost[who] = max(lost[who], result["lost_pct"])
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(conf, ignore_errors=True)
    ours, theirs = max(runs["serve"]), max(runs["dnsmasq"])
    return {"services": len(names), "entries": len(entries), "serve_qps": ours,
            "dnsmasq_qps": theirs, "ratio": ours / theirs, "runs": runs, "lost_pct": lost}


def _held_read(port: int, name: str, index: str, out: dict[str, int]) -> None:
    """A blocking read for `name`: returns (and stamps the time) once it has entries."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body, headers = http_get(port, f"/v1/services/{name}?index={index}&wait=5s")
        if status == 200 and json.loads(body):
            out["at"] = time.time_ns()
            return
        index = {k.lower(): v for k, v in headers.items()}.get("x-registrator-index", index)


def change_latency(server: EtcdServer, serve: Serve, prefix: str,
                   rounds: int) -> dict[str, Any]:
    watch = Watch(server, f"{prefix}/services/lat")
    floor, dns_ms, http_ms = [], [], []
    try:
        for i in range(rounds):
            name = f"lat{i:04d}"
            e = entry(name, 0, 60000 + i)
            key = f"{prefix}/services/{name}/{e['id']}"
            _, _, headers = http_get(serve.http, f"/v1/services/{name}")
            index = {k.lower(): v for k, v in headers.items()}["x-registrator-index"]
            held: dict[str, int] = {}
            reader = threading.Thread(target=_held_read, args=(serve.http, name, index, held))
            reader.start()
            time.sleep(0.05)  # let serve hold the read (not measured)
            started = time.time_ns()
            server.view.put(key, json.dumps(e))
            seen_dns = _poll_dns(serve.dns, f"{name}.service.{DOMAIN}")
            reader.join(15)
            wait_until(lambda k=key: k in watch.seen, timeout=10, message="the floor's watch")
            if seen_dns is None or "at" not in held:
                raise RuntimeError(f"round {i}: serve never answered the change")
            floor.append((watch.seen[key] - started) / 1e6)
            dns_ms.append((seen_dns - started) / 1e6)
            http_ms.append((held["at"] - started) / 1e6)
    finally:
        watch.close()

    def stats(values: list[float]) -> dict[str, float]:
        return {"p50_ms": statistics.median(values), "p99_ms": pct(values, 0.99)}

    out = {"n": rounds, "floor": stats(floor), "dns": stats(dns_ms), "http": stats(http_ms)}
    for side in ("dns", "http"):
        out[side]["p50_over_floor_ms"] = out[side]["p50_ms"] - out["floor"]["p50_ms"]
    return out


def _poll_dns(port: int, name: str) -> int | None:
    """Ask until `name` has an answer; the time (ns) it first had one, None after 5 s. One
    socket and one prepared question: the poller's own cost stays out of the figure."""
    query = dns.message.make_query(name, "A").to_wire()
    deadline = time.monotonic() + 5
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            sock.send(query)
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            if reply[:2] == query[:2] and reply[6:8] != b"\x00\x00":  # ANCOUNT > 0
                return time.time_ns()
            time.sleep(0.0005)  # lets the watch threads of this process run
    return None


def http_throughput(serve: Serve, name: str, seconds: float, tmp: Path) -> dict[str, Any]:
    proc, port = trivial_http(tmp / "trivial.log")
    try:
        path = f"/v1/services/{name}"
        if http_get(serve.http, path)[0] != 200:
            raise RuntimeError(f"serve does not answer {path}")
        http_load(serve.http, path, 0.5)  # warm both
        http_load(port, "/", 0.5)
        ours = http_load(serve.http, path, seconds)
        floor = http_load(port, "/", seconds)
    finally:
        stop(proc)
    return {"path": path, "serve_rps": ours["rps"], "trivial_rps": floor["rps"],
            "ratio": ours["rps"] / floor["rps"], "errors": ours["errors"] + floor["errors"]}


def footprint(server: EtcdServer, n_entries: int, idle_s: float, tmp: Path) -> dict[str, Any]:
    prefix = f"/serve-rss-{uuid.uuid4().hex[:6]}"
    entries = registry(max(n_entries // 10, 1), 10, "r")[:n_entries]
    put_entries(server, prefix, entries)
    serve = Serve(server, prefix, tmp / "serve-rss.log")
    try:
        serve.wait_count(len(entries), timeout=300)
        for e in entries[:: max(len(entries) // 50, 1)]:  # answers built, as in use
            dns_ask(serve.dns, f"{e['name']}.service.{DOMAIN}", "SRV")
            http_get(serve.http, f"/v1/services/{e['name']}")
        time.sleep(1)  # let the answers' garbage go before the idle window
        rss, cpu0 = rss_mb_and_cpu_s(serve.proc.pid)
        time.sleep(idle_s)
        rss_after, cpu1 = rss_mb_and_cpu_s(serve.proc.pid)
    finally:
        stop(serve.proc)
        server.view.delete_prefix(prefix + "/")
    return {"entries": len(entries), "rss_mb": max(rss, rss_after),
            "idle_cpu_pct": (cpu1 - cpu0) / idle_s * 100, "idle_s": idle_s}


def serve_run(server: EtcdServer, sizes: dict[str, Any], tmp: Path) -> dict[str, Any]:
    prefix = f"/serve-{uuid.uuid4().hex[:6]}"
    entries = registry(int(sizes["services"]), int(sizes["per_service"]), "s")
    put_entries(server, prefix, entries)
    serve = Serve(server, prefix, tmp / "serve.log")
    out: dict[str, Any] = {}
    try:
        serve.wait_count(len(entries))
        out["dns"] = dns_throughput(serve, entries, sizes, tmp)
        out["latency"] = change_latency(server, serve, prefix, int(sizes["latency"]))
        out["http"] = http_throughput(serve, entries[0]["name"], float(sizes["http_s"]), tmp)
    finally:
        stop(serve.proc)
        server.view.delete_prefix(prefix + "/")
    out["footprint"] = footprint(server, int(sizes["rss_entries"]), float(sizes["idle_s"]),
                                 tmp)
    return out


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    d, lat, h, f = result["dns"], result["latency"], result["http"], result["footprint"]
    out = []
    if "skipped" in d:
        out.append(("serve DNS answers/s (dnsmasq)", d["skipped"], "", ">= 0.25x"))
    else:
        out.append((f"serve DNS answers/s, {d['services']} services (dnsmasq)",
                    f"{d['serve_qps']:.0f} ({d['dnsmasq_qps']:.0f})", f"{d['ratio']:.2f}x",
                    ">= 0.25x"))
    fl = lat["floor"]
    for side, label in (("dns", "DNS"), ("http", "HTTP")):
        s = lat[side]
        out.append((f"store change -> {label} answer p50/p99 (watch)",
                    (f"{s['p50_ms']:.2f}/{s['p99_ms']:.2f} ms ({fl['p50_ms']:.2f}/"
                    f"{fl['p99_ms']:.2f})"), f"p50 floor +{s['p50_over_floor_ms']:.2f} ms",
                    "p50 <= floor + 5 ms"))
    out.append(("HTTP /v1/services/NAME req/s (trivial route)",
                f"{h['serve_rps']:.0f} ({h['trivial_rps']:.0f})", f"{h['ratio']:.2f}x",
                ">= 0.5x"))
    out.append((f"serve RSS with {f['entries']} entries / idle CPU",
                f"{f['rss_mb']:.0f} MB / {f['idle_cpu_pct']:.2f} %", "", "<= 120 MB, ~0"))
    return out


def table(result: dict[str, Any]) -> str:
    lines = rows(result)
    width = max(len(row[0]) for row in lines)
    return "\n".join(f"{a:<{width}}  {b:<34} {c:<28} {d}" for a, b, c, d in lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/serve.py")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--out", default=None, help="also write the result here as JSON")
    args = parser.parse_args()
    server = EtcdServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = serve_run(server, QUICK if args.quick else FULL, Path(tmp))
    finally:
        server.stop()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
