"""The benchmark sections. Each returns a dict of numbers; __main__ prints and saves them."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from env import LABEL, SOCKET, Bench, Proxy, UnixHTTP, Watch, rss_mb_and_cpu_s, stop, wait_until
from harness import http1_requests


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class StartTimes:
    """The engine's own timeNano of every start event of the bench's containers."""

    def __init__(self, b: Bench) -> None:
        self.at: dict[str, int] = {}
        self._stream = b.client.api.events(decode=True, filters={
            "type": "container", "event": "start", "label": f"{LABEL}={b.tag}"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self.at[event["id"]] = event["timeNano"]
        except Exception:  # noqa: BLE001 - closing the stream ends the thread
            return

    def close(self) -> None:
        self._stream.close()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def quiet_loop(b: Bench, rounds: int) -> dict[str, float]:
    """Inspect and put latencies with nothing else happening, for reference."""
    c = b.run("quiet")
    ins, put = UnixHTTP(), http.client.HTTPConnection("127.0.0.1", b.server.port)
    times: dict[str, list[float]] = {"inspect": [], "put": []}
    for i in range(rounds):
        t = time.perf_counter()
        ins.request("GET", f"/containers/{c.id}/json")
        ins.getresponse().read()
        times["inspect"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        put.request("POST", "/v3/kv/put", json.dumps({"key": _b64(f"/quiet/{i}"),
                                                      "value": _b64("x")}))
        put.getresponse().read()
        times["put"].append((time.perf_counter() - t) * 1000)
    ins.close()
    put.close()
    b.remove([c.id])
    return {"inspect_ms_p50": statistics.median(times["inspect"]),
            "put_ms_p50": statistics.median(times["put"])}


class MinimalRegistrator:
    """The floor: on each start event, inspect the container and put one key. Raw HTTP with
    kept-alive connections to the Docker socket and etcd's JSON gateway, nothing else."""

    def __init__(self, b: Bench, prefix: str) -> None:
        self.b, self.prefix = b, prefix
        self.events = UnixHTTP()
        filters = quote(json.dumps({"type": ["container"], "event": ["start"],
                                    "label": [f"{LABEL}={b.tag}"]}))
        self.events.request("GET", f"/events?filters={filters}")
        self.response = self.events.getresponse()
        # Connected before the first event can come: its latency is not a connect's.
        self.write = self.writer()
        threading.Thread(target=self._run, daemon=True).start()

    def writer(self) -> Callable[[str, str], None]:
        """One store write: here a put through etcd's JSON gateway, kept alive."""
        put = http.client.HTTPConnection("127.0.0.1", self.b.server.port)

        def write(key: str, value: str) -> None:
            put.request("POST", "/v3/kv/put", json.dumps({"key": _b64(key),
                                                          "value": _b64(value)}))
            put.getresponse().read()

        return write

    def _run(self) -> None:
        inspect = UnixHTTP()
        try:
            while line := self.response.readline():
                if not line.strip().startswith(b"{"):
                    continue
                cid = json.loads(line)["id"]
                inspect.request("GET", f"/containers/{cid}/json")
                data = json.loads(inspect.getresponse().read())
                port = data["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
                self.write(f"{self.prefix}/{cid}", f"127.0.0.1:{port}")
        except Exception:  # noqa: BLE001 - close() from another thread (the read fails) or
            return  # a store client's own error: either ends the floor

    def close(self) -> None:
        self.events.sock.shutdown(socket.SHUT_RDWR)
        self.events.close()


def sequential_latency(b: Bench, starts: StartTimes, watch: Watch, n: int,
                       key_of: Any) -> list[float]:
    """Start n containers one at a time; ms from each start event to its key visible."""
    out = []
    for i in range(n):
        c = b.run(f"seq{i}")
        key = wait_until(lambda c=c: next((k for k in watch.seen if key_of(k, c)), None),
                         timeout=20, interval=0.002, message="a key")
        wait_until(lambda c=c: c.id in starts.at, timeout=10, interval=0.002, message="event")
        out.append((watch.seen[key] - starts.at[c.id]) / 1e6)
        time.sleep(0.1)  # the pacing of "one at a time", the same for floor and daemon
    return out


def burst(b: Bench, starts: StartTimes, watch: Watch, n: int) -> dict[str, float]:
    """n containers started as fast as Docker allows; last start event to last key."""
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: b.run(f"burst{i}"), range(n)))
    wait_until(lambda: all(c.id in starts.at for c in made), timeout=60, message="events")
    keys = wait_until(lambda: (found := [k for k in watch.seen if any(
        f":{c.name}:" in k for c in made)]) and len(found) >= n and found,
        timeout=60, interval=0.005, message="every burst key")
    last_start = max(starts.at[c.id] for c in made)
    last_key = max(watch.seen[k] for k in keys)
    return {"containers": n, "last_event_to_last_key_s": max(0.0, last_key - last_start) / 1e9}


def _start_and_wait(b: Bench, prefix: str, n: int, docker_host: str | None) -> tuple[Any, float]:
    # Counted from watch events: polling the store would take CPU from the daemon.
    watch = Watch(b.server, prefix + "/services/")
    t0 = time.monotonic()
    proc = b.daemon(prefix, "--ttl", "6", "--resync", "0", docker_host=docker_host)
    wait_until(lambda: watch.count() >= n, timeout=120, interval=0.005,
               message="every container stored")
    took = time.monotonic() - t0
    watch.close()
    return proc, took


def cold_start(b: Bench, n: int, tmp: Path) -> tuple[dict[str, float], Any]:
    """n containers already running; a new daemon started: time until all are stored (on
    the Docker socket itself), then again through a counting proxy for the API calls."""
    direct, took = _start_and_wait(b, f"/cold-{b.tag}", n, None)
    rss, cpu = rss_mb_and_cpu_s(direct.pid)
    stop(direct)
    prefix = f"/cold2-{b.tag}"
    proxy = Proxy(SOCKET, listen=str(tmp / "count.sock"), requests=http1_requests)
    proc, proxied = _start_and_wait(b, prefix, n, f"unix://{proxy.listen}")
    result = {"containers": n, "all_stored_s": took, "docker_api_calls": proxy.requests,
              "all_stored_via_proxy_s": proxied, "rss_mb": rss, "cpu_s": cpu}
    return result, (proc, prefix, proxy)


def etcd_counters(b: Bench) -> dict[str, float]:
    with urllib.request.urlopen(f"{b.server.endpoint}/metrics", timeout=5) as r:  # noqa: S310
        text = r.read().decode()
    wanted = {"keepalive": 'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive"',
              "txn": 'grpc_server_handled_total{grpc_code="OK",grpc_method="Txn"',
              "put": 'grpc_server_handled_total{grpc_code="OK",grpc_method="Put"'}
    out = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        for name, prefix in wanted.items():
            if line.startswith(prefix):
                out[name] += float(line.rsplit(" ", 1)[1])
    return out


def liveness(b: Bench, seconds: float, services: int) -> dict[str, float]:
    before = etcd_counters(b)
    time.sleep(seconds)  # the measurement window itself
    after = etcd_counters(b)
    per_min = {k: (after[k] - before[k]) * 60 / seconds for k in before}
    return {"services": services, "keepalives_per_min": per_min["keepalive"],
            "writes_per_min": per_min["txn"] + per_min["put"]}


def recovery(b: Bench, proc: Any, prefix: str, n: int) -> dict[str, float]:
    """Cut the daemon off (SIGSTOP) past the TTL; time from SIGCONT to all entries back."""
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: not b.server.view.keys(prefix + "/"), timeout=60,
                   message="the lease to expire")
    finally:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGCONT)
    wait_until(lambda: len(b.server.view.keys(prefix + "/services/")) >= n, timeout=60,
               interval=0.005, message="entries back")
    return {"services": n, "all_back_s": time.monotonic() - t0}


def footprint(proc: Any) -> dict[str, float]:
    rss, cpu = rss_mb_and_cpu_s(proc.pid)
    return {"rss_mb": rss, "cpu_s": cpu}


__all__ = ["MinimalRegistrator", "StartTimes", "burst", "cold_start", "footprint",
           "liveness", "pct", "quiet_loop", "recovery", "sequential_latency", "stop"]
