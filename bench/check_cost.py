"""What a label health check costs: N services with HTTP (or TCP) checks at a fixed interval
against a local server in another process, for a bounded time. Prints checks/s and the CPU
time the checking process spent per check.

    python bench/check_cost.py --services 300 --interval 1 --seconds 10 [--kind tcp]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import socket
import subprocess
import sys
import threading
import time

import structlog

from registrator.checks import CheckSpec
from registrator.health import HealthMonitor
from registrator.model import Service

SERVER = """
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
class Server(ThreadingHTTPServer):
    request_queue_size = 1024
class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
Server(("127.0.0.1", int(sys.argv[1])), Quiet).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=300)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kind", choices=["http", "tcp"], default="http")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    port = free_port()
    # One server stands in for N services: give it the backlog N servers would have.
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        spec = CheckSpec(args.kind, "/", interval=args.interval, timeout=2.0, rise=1, fall=1)
        monitor = HealthMonitor(on_change=lambda _cid: None)
        monitor.start()
        for i in range(args.services):
            service = Service(name=f"s{i}", id=f"h:s{i}:80", address="127.0.0.1", port=port,
                              protocol="tcp", host="h", container_id=f"c{i}",
                              container_name=f"/c{i}", image="x", check=spec)
            monitor.gate(f"c{i}", {f"k{i}": service}, lambda _k: True)
        cpu0, wall0, n0 = cpu_seconds(), time.monotonic(), monitor.checks_run
        threading.Event().wait(args.seconds)
        cpu, wall, checks = cpu_seconds() - cpu0, time.monotonic() - wall0, monitor.checks_run - n0
        monitor.stop()
    finally:
        server.terminate()
        server.wait(10)
    result = {"kind": args.kind, "services": args.services, "interval_s": args.interval,
              "checks": checks, "checks_per_s": round(checks / wall, 1),
              "cpu_s": round(cpu, 3), "cpu_ms_per_check": round(1000 * cpu / max(checks, 1), 3),
              "cpu_share_of_one_core": round(cpu / wall, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
