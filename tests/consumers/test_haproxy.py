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
def lb(etcd, start_daemon, haproxy, consumer, tmp_path):
    """daemon + render + HAProxy for a service name of this test's own."""
    name = f"lb{uuid.uuid4().hex[:8]}"
    port = free_port()
    daemon = start_daemon()
    dest = tmp_path / "haproxy.cfg"
    env = {"LB_SERVICE": name, "LB_BIND": f"127.0.0.1:{port}"}
    common = ("render", "--etcd-endpoints", etcd.endpoint, "--prefix", daemon.prefix,
              "--template", str(TEMPLATE), "--dest", str(dest),
              "--check-cmd", f"{HAPROXY} -q -c -f {{src}}")
    first = cli(*common, "--once", env=env)
    assert first.returncode == 0, first.stderr
    proxy = haproxy(dest)
    render = consumer(*common, "--reload-cmd", proxy.reload_cmd, "--wait", "50ms:1s", env=env)
    wait_until(lambda: render.logged("watching the registry"), message="render watching")

    class LB:
        pass

    out = LB()
    out.name, out.port, out.daemon, out.dest, out.proxy, out.render = (
        name, port, daemon, dest, proxy, render)
    return out


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
    assert body_or_none(lb.port) is None  # no backend yet: 503
    started = time.monotonic()
    one = web(containers, lb.name, "one")
    wait_until(lambda: body_or_none(lb.port) == "one", timeout=20, message="routed to one")
    measured(f"container start -> routed through HAProxy: {time.monotonic() - started:.3f} s")

    two = web(containers, lb.name, "two")
    wait_until(lambda: {body_or_none(lb.port) for _ in range(6)} == {"one", "two"},
               timeout=20, message="both in rotation")

    one.stop(timeout=1)  # httpd as PID 1 ignores SIGTERM: killed after 1 s
    stopped = time.monotonic()
    wait_until(lambda: one.name not in lb.dest.read_text(), timeout=20,
               message="one gone from the config")
    measured(f"container stopped -> out of the config: {time.monotonic() - stopped:.3f} s")
    assert {body_or_none(lb.port) for _ in range(6)} == {"two"}

    two.pause()
    try:
        wait_until(lambda: "server s_" not in lb.dest.read_text(), timeout=20,
                   message="paused container out of the config")
        wait_until(lambda: body_or_none(lb.port) is None, message="no backend: 503")
    finally:
        two.unpause()
    wait_until(lambda: body_or_none(lb.port) == "two", timeout=20, message="two back")
    assert lb.render.alive()


def test_hitless_while_containers_come_and_go(lb, containers):
    first = web(containers, lb.name, "c0")
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
    checked = web(containers, lb.name, "checked", **{
        "registrator.check.http": "/index.html", "registrator.check.interval": "300ms",
        "registrator.check.fall": "1", "registrator.check.rise": "1"})
    wait_until(lambda: body_or_none(lb.port) == "checked", timeout=20, message="routed")
    checked.exec_run("rm /www/index.html")
    wait_until(lambda: checked.name not in lb.dest.read_text(), timeout=20,
               message="unhealthy container out of the config")
    checked.exec_run("sh -c 'echo back > /www/index.html'")
    wait_until(lambda: body_or_none(lb.port) == "back", timeout=20, message="healthy again")
