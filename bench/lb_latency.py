"""Container start -> HAProxy routes to it, through the real loop (dockerd, the daemon, etcd,
`registrator render`, HAProxy master-worker), against a floor measured in the same run:
`docker run` + the daemon's event -> key visible (both timed per start with an etcd watch)
+ render's --wait MIN + one HAProxy check-and-reload done by hand (timed separately on an
HAProxy of its own). Loopback only; every container and process is stopped by its id.
Run: .venv/bin/python bench/lb_latency.py [starts]"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from env import LABEL, Bench, Watch, stop, wait_until
from harness import BUSYBOX_IMAGE, answer, free_port

ROOT = Path(__file__).resolve().parents[1]
WAIT_MIN_MS = 50
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def get(port: int) -> str | None:
    return answer(port, timeout=1)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hand_reload_ms(tmp: Path, rounds: int) -> list[float]:
    """Write a changed config, `haproxy -c` it, SIGUSR2 the master, until the new one answers."""
    port = free_port()
    cfg = tmp / "hand.cfg"

    def write(gen: int) -> None:
        cfg.write_text(f"""defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend f
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string gen{gen}
""")

    write(0)
    proc = subprocess.Popen([HAPROXY, "-W", "-q", "-f", str(cfg), "-p", str(tmp / "hand.pid")])
    try:
        wait_until(lambda: get(port) == "gen0", message="hand haproxy up")
        out = []
        for gen in range(1, rounds + 1):
            t0 = time.perf_counter()
            write(gen)
            subprocess.run([HAPROXY, "-q", "-c", "-f", str(cfg)], check=True)
            proc.send_signal(signal.SIGUSR2)
            while get(port) != f"gen{gen}":
                time.sleep(0.001)
            out.append((time.perf_counter() - t0) * 1000)
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    starts = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    tmp = Path(tempfile.mkdtemp())
    b = Bench()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        prefix, name, lb_port = f"/lb{uuid.uuid4().hex[:6]}", "benchweb", free_port()
        watch = Watch(b.server, prefix + "/services/")
        procs.append(b.daemon(prefix))
        dest = tmp / "haproxy.cfg"
        env_vars = {"LB_SERVICE": name, "LB_BIND": f"127.0.0.1:{lb_port}",
                    "PATH": "/usr/sbin:/usr/bin:/bin"}
        # The example keeps its last file when the service has no entries (require());
        # this bench times each container alone, from none to one and back to none.
        template = tmp / "haproxy.cfg.j2"
        template.write_text((ROOT / "examples" / "haproxy" / "haproxy.cfg.j2").read_text()
                            .replace("require(name)", "service(name)"))
        common = [sys.executable, "-m", "registrator", "render", "--etcd-endpoints",
                  b.server.endpoint, "--prefix", prefix, "--template",
                  str(template), "--dest", str(dest),
                  "--check-cmd", "haproxy -q -c -f {src}", "--log-level", "warning"]
        subprocess.run([*common, "--once"], env=env_vars, check=True)
        haproxy = subprocess.Popen([HAPROXY, "-W", "-q", "-f", str(dest), "-p",
                                    str(tmp / "lb.pid")])
        procs.append(haproxy)
        procs.append(subprocess.Popen(
            [*common, "--reload-cmd", f"kill -USR2 {haproxy.pid}", "--wait",
             f"{WAIT_MIN_MS}ms:1s"], env=env_vars))
        time.sleep(1.0)  # let the daemon and render settle before timing anything
        routed, visible = [], []
        for i in range(starts):
            t0 = time.time_ns()
            c = b.client.containers.run(
                BUSYBOX_IMAGE,
                f"sh -c 'echo b{i} > /tmp/index.html && exec httpd -f -p 80 -h /tmp'",
                detach=True, ports={"80/tcp": ("127.0.0.1", None)},
                labels={LABEL: b.tag, "registrator.name": name})
            b.ids.append(c.id)
            while get(lb_port) != f"b{i}":
                time.sleep(0.001)
            routed.append((time.time_ns() - t0) / 1e6)
            key = wait_until(lambda c=c: next((k for k in watch.seen if c.name in k), None))
            visible.append((watch.seen[key] - t0) / 1e6)
            b.remove([c.id])
            wait_until(lambda: get(lb_port) is None, timeout=20, message="out of rotation")
        hand = hand_reload_ms(tmp, 20)
        hand_p50 = statistics.median(hand)
        floors = [v + WAIT_MIN_MS + hand_p50 for v in visible]
        overhead = [r - f for r, f in zip(routed, floors, strict=True)]
        print(f"{starts} starts; --wait {WAIT_MIN_MS}ms; loopback; HAProxy master-worker")
        print(f"start -> routed:        p50 {pct(routed, .5):7.1f} ms  p99 "
              f"{pct(routed, .99):7.1f} ms")
        print(f"start -> key visible:   p50 {pct(visible, .5):7.1f} ms  (docker run + daemon)")
        print(f"hand check+reload:      p50 {hand_p50:7.1f} ms  p99 {pct(hand, .99):7.1f} ms")
        print(f"floor (visible+MIN+hand) p50 {pct(floors, .5):7.1f} ms")
        print(f"overhead above floor:   p50 {pct(overhead, .5):7.1f} ms  p99 "
              f"{pct(overhead, .99):7.1f} ms  (goal <= 50 ms p50)")
    finally:
        for proc in reversed(procs):
            stop(proc)
        b.close()


if __name__ == "__main__":
    main()
