"""The headline: real dockerd, the real daemon, real etcd, `registrator render` and a real
HAProxy (our own, on loopback ports, stopped by its own pid), with the shipped example
template. A labelled container serves through HAProxy moments later; a stopped or paused one
is out of rotation; and a bounded client loop sees no failed request meanwhile."""

from __future__ import annotations

import signal
import sys
import time
import uuid

import pytest
from consumer_support import HAPROXY, ROOT, ClientLoop, cli, get
from harness import free_port, wait_until

TEMPLATE = ROOT / "examples" / "haproxy" / "haproxy.cfg.j2"
LOCAL = ("127.0.0.1", None)


def web(containers, name, body, **labels):
    return containers.run(f"sh -c 'mkdir -p /www && echo {body} > /www/index.html && "
                          "exec httpd -f -p 80 -h /www'",
                          ports={"80/tcp": LOCAL}, labels={"registrator.name": name, **labels})


@pytest.fixture
def make_lb(etcd, start_daemon, haproxy, consumer, tmp_path):
    """daemon + render + HAProxy for a service name of this test's own. The example uses
    require(): there is no file before the service's first entry, so `start()` (HAProxy and
    the running render) comes after the test's first container is registered."""

    def make(*daemon_args):
        name = f"lb{uuid.uuid4().hex[:8]}"
        port = free_port()
        daemon = start_daemon(*daemon_args)
        dest = tmp_path / f"haproxy-{name}.cfg"
        env = {"LB_SERVICE": name, "LB_BIND": f"127.0.0.1:{port}"}
        common = ("render", "--etcd-endpoints", etcd.endpoint, "--prefix", daemon.prefix,
                  "--template", str(TEMPLATE), "--dest", str(dest),
                  "--check-cmd", f"{HAPROXY} -q -c -f {{src}}")

        class LB:
            def start(self):
                wait_until(lambda: cli(*common, "--once", env=env).returncode == 0,
                           timeout=30, message="a first file with the first entry")
                self.proxy = haproxy(dest)
                self.render = consumer(*common, "--reload-cmd", self.proxy.reload_cmd,
                                       "--wait", "50ms:1s", env=env)
                wait_until(lambda: self.render.logged("watching the registry"),
                           message="render watching")
                return self

        out = LB()
        out.name, out.port, out.daemon, out.dest = name, port, daemon, dest
        return out

    return make


@pytest.fixture
def lb(make_lb):
    return make_lb()


def measured(text):
    """Figures for the report; shown with pytest -s. Never asserted: no timing assertions."""
    sys.stderr.write(f"\n[measured] {text}\n")


def body_or_none(port):
    try:
        status, body = get(port)
    except OSError:
        return None
    return body.strip() if status == 200 else None


def test_container_serves_through_haproxy_and_leaves_rotation(lb, containers):
    one = web(containers, lb.name, "one")
    lb.start()
    wait_until(lambda: body_or_none(lb.port) == "one", timeout=20, message="routed to one")

    started = time.monotonic()
    two = web(containers, lb.name, "two")
    wait_until(lambda: {body_or_none(lb.port) for _ in range(6)} == {"one", "two"},
               timeout=20, message="both in rotation")
    measured(f"container start -> routed through HAProxy: {time.monotonic() - started:.3f} s")

    one.stop(timeout=1)  # httpd as PID 1 ignores SIGTERM: killed after 1 s
    stopped = time.monotonic()
    wait_until(lambda: one.name not in lb.dest.read_text(), timeout=20,
               message="one gone from the config")
    measured(f"container stopped -> out of the config: {time.monotonic() - stopped:.3f} s")
    assert {body_or_none(lb.port) for _ in range(6)} == {"two"}

    two.pause()
    try:
        # The last entry went: require() keeps the file, HAProxy's check takes it out.
        wait_until(lambda: lb.render.logged("render skipped; keeping the last good file"),
                   timeout=20, message="render kept the last file")
        wait_until(lambda: body_or_none(lb.port) is None, message="no backend: 503")
    finally:
        two.unpause()
    wait_until(lambda: body_or_none(lb.port) == "two", timeout=20, message="two back")
    assert lb.render.alive()


def test_hitless_while_containers_come_and_go(lb, containers):
    first = web(containers, lb.name, "c0")
    lb.start()
    wait_until(lambda: body_or_none(lb.port) == "c0", timeout=20, message="first backend up")
    loop = ClientLoop(lb.port, rate=20, seconds=15).start()
    try:
        second = web(containers, lb.name, "c1")
        wait_until(lambda: "c1" in loop.bodies, timeout=15, message="c1 serving")
        first.stop(timeout=1)
        third = web(containers, lb.name, "c2")
        wait_until(lambda: "c2" in loop.bodies, timeout=15, message="c2 serving")
        lb.proxy.proc.send_signal(signal.SIGUSR2)  # one more reload, by hand
        second.stop(timeout=1)
        wait_until(lambda: "server s_" in lb.dest.read_text() and
                   lb.dest.read_text().count("server s_") == 1, timeout=15,
                   message="only c2 left")
        loop.join()
    finally:
        loop.stop()
    measured(f"hitless loop: {loop.ok} ok, {len(loop.failures)} failed, "
             f"{len(lb.render.logged('reloaded'))} reloads by render")
    assert loop.failures == []
    assert loop.ok > 100
    assert {"c0", "c1", "c2"} <= loop.bodies
    assert len(lb.render.logged("reloaded")) >= 4
    third.reload()
    assert third.status == "running"


def test_unhealthy_container_leaves_rotation(lb, containers):
    """The daemon's label check fails -> the entry goes -> render drops the server."""
    web(containers, lb.name, "other")  # keeps the service non-empty (require())
    checked = web(containers, lb.name, "checked", **{
        "registrator.check.http": "/index.html", "registrator.check.interval": "300ms",
        "registrator.check.fall": "1", "registrator.check.rise": "1"})
    lb.start()
    wait_until(lambda: checked.name in lb.dest.read_text(), timeout=20, message="checked in")
    wait_until(lambda: "checked" in {body_or_none(lb.port) for _ in range(4)}, timeout=20,
               message="routed")
    checked.exec_run("rm /www/index.html")
    wait_until(lambda: checked.name not in lb.dest.read_text(), timeout=20,
               message="unhealthy container out of the config")
    checked.exec_run("sh -c 'echo back > /www/index.html'")
    wait_until(lambda: "back" in {body_or_none(lb.port) for _ in range(4)}, timeout=20,
               message="healthy again")


def test_backend_kept_while_the_daemon_is_down_past_the_ttl(make_lb, containers, etcd):
    """Issue 20 item 11: a host's registrator dies; after the TTL its entries vanish while
    its containers still serve. The example keeps the last file (require()) instead of
    emptying the backend (503 for everyone)."""
    lb = make_lb("--ttl", "2s")
    web(containers, lb.name, "one")
    lb.start()
    wait_until(lambda: body_or_none(lb.port) == "one", timeout=20, message="routed to one")
    lb.daemon.kill()
    wait_until(lambda: not any(k.startswith(f"{lb.daemon.prefix}/services/{lb.name}/")
                               for k in etcd.view.keys(lb.daemon.prefix + "/")),
               timeout=30, message="the entries expired with the lease")
    wait_until(lambda: lb.render.logged("render skipped; keeping the last good file"),
               timeout=20, message="render kept the last file")
    assert body_or_none(lb.port) == "one"
    assert lb.render.alive()
