"""HAProxy's own resolver following `registrator serve --dns` (examples/haproxy-dns): real
dockerd, the real daemon, real etcd or ZooKeeper, serve, and a real HAProxy 2.6
(master-worker, its own pid file and stats socket, loopback ports). Containers come and go;
HAProxy routes to them with NO reload at all: its worker is the same process throughout."""

from __future__ import annotations

import socket
import sys
import time
import uuid

import pytest
from consumer_support import ROOT, ClientLoop, get
from dns_support import free_dns_port, need_dig, short
from harness import free_port, published_port, wait_until
from zk_harness import both_stores

CFG = ROOT / "examples" / "haproxy-dns" / "haproxy.cfg"
LOCAL = ("127.0.0.1", None)
# show servers state: admin-state bits that take a slot out (forced, inherited, config and
# resolution maintenance).
MAINT = 0x01 | 0x02 | 0x04 | 0x20


def web(containers, name, body):
    return containers.run(f"sh -c 'mkdir -p /www && echo {body} > /www/index.html && "
                          "exec httpd -f -p 80 -h /www'",
                          ports={"80/tcp": LOCAL}, labels={"registrator.name": name})


def stats(path, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out.decode()


def servers(path):
    """{(address, port)} of the slots in use, from `show servers state web`."""
    lines = stats(path, "show servers state web").splitlines()
    header = next(line for line in lines if line.startswith("# be_id"))[2:].split()
    out = set()
    for line in lines:
        if not line or line.startswith("#") or line.strip() == "1":
            continue
        row = dict(zip(header, line.split(), strict=False))
        if not int(row["srv_admin_state"]) & MAINT:
            out.add((row["srv_addr"], int(row["srv_port"])))
    return out


def worker_pid(path):
    return next(line.split(":")[1].strip() for line in stats(path, "show info").splitlines()
                if line.startswith("Pid:"))


def body_or_none(port):
    try:
        status, body = get(port)
    except OSError:
        return None
    return body.strip() if status == 200 else None


def measured(text):
    sys.stderr.write(f"\n[measured] {text}\n")


@pytest.fixture
def lb(store, start_daemon, consumer, haproxy, tmp_path):
    need_dig()
    name = f"hd{uuid.uuid4().hex[:8]}"
    daemon = start_daemon()
    dns_port, lb_port = free_dns_port(), free_port()
    serve = consumer("serve", *store.daemon_args(), "--prefix", daemon.prefix,
                     "--dns", f"127.0.0.1:{dns_port}", "--dns-udp-max", "8192")
    wait_until(lambda: short(dns_port, f"{daemon.hostname}.node.registrator"), timeout=20,
               message="serve answering")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(CFG.read_text())  # the example as shipped; its pid file and log beside it
    sock = tmp_path / "stats.sock"
    env = {"LB_SERVICE": name, "LB_BIND": f"127.0.0.1:{lb_port}", "LB_DNS":
           f"127.0.0.1:{dns_port}", "LB_STATS": str(sock)}
    proxy = haproxy(cfg, env=env)
    wait_until(sock.exists, message="the stats socket")

    class LB:
        pass

    out = LB()
    out.name, out.port, out.sock, out.proxy, out.serve = name, lb_port, sock, proxy, serve
    out.pid = worker_pid(sock)
    return out


@both_stores
def test_haproxy_follows_containers_by_dns_with_no_reload(lb, containers):
    assert body_or_none(lb.port) is None  # nothing registered: 503
    assert servers(lb.sock) == set()
    started = time.monotonic()
    one = web(containers, lb.name, "one")
    wait_until(lambda: body_or_none(lb.port) == "one", timeout=30, message="routed to one")
    measured(f"container start -> routed by HAProxy's resolver: "
             f"{time.monotonic() - started:.3f} s")
    assert servers(lb.sock) == {("127.0.0.1", published_port(one, "80/tcp"))}

    loop = ClientLoop(lb.port, rate=20, seconds=40).start()
    try:
        two = web(containers, lb.name, "two")
        wait_until(lambda: "two" in loop.bodies, timeout=30, message="two serving")
        assert servers(lb.sock) == {("127.0.0.1", published_port(c, "80/tcp"))
                                    for c in (one, two)}
        one.stop(timeout=1)  # httpd as PID 1 ignores SIGTERM: killed after 1 s
        stopped = time.monotonic()
        wait_until(lambda: servers(lb.sock) == {("127.0.0.1", published_port(two, "80/tcp"))},
                   timeout=30, message="one's slot released")
        measured(f"container stopped -> slot released: {time.monotonic() - stopped:.3f} s")
        three = web(containers, lb.name, "three")
        wait_until(lambda: "three" in loop.bodies, timeout=30, message="three serving")
    finally:
        loop.stop()
    measured(f"client loop: {loop.ok} ok, {len(loop.failures)} failed")
    assert loop.failures == []
    assert {"one", "two", "three"} <= loop.bodies
    assert {body_or_none(lb.port) for _ in range(6)} == {"two", "three"}
    two.stop(timeout=1)
    three.stop(timeout=1)
    wait_until(lambda: body_or_none(lb.port) is None and not servers(lb.sock), timeout=30,
               message="no backend left: 503")
    # The same worker served it all: HAProxy was never reloaded.
    assert worker_pid(lb.sock) == lb.pid
    assert lb.proxy.proc.poll() is None
    assert lb.serve.alive()
