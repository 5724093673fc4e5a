"""Drain on stop (SPEC §5) on a real dockerd: entries leave at the stop signal, while the
process still runs; other signals leave them; a container that survives comes back."""

from __future__ import annotations

import subprocess
import threading
import time

from harness import BUSYBOX_IMAGE, TEST_LABEL, wait_until

LOCAL = ("127.0.0.1", None)
# PID 1 ignores SIGTERM: the container keeps running through its whole stop timeout.
STUBBORN = "sh -c 'trap \"\" TERM; while true; do sleep 1; done'"


def running(container) -> bool:
    container.reload()
    return bool(container.attrs["State"]["Running"])


def saw_kill(daemon, container) -> bool:
    return any(e.get("event") == "docker event" and e.get("action") == "kill"
               and e.get("container") == container.id[:12] for e in daemon.log_events())


def test_stop_removes_the_entry_at_once_while_the_container_still_runs(start_daemon,
                                                                        containers):
    daemon = start_daemon("--ttl", "120")
    c = containers.run(STUBBORN, ports={"80/tcp": LOCAL})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    stopper = threading.Thread(target=subprocess.run, daemon=True,
                               args=(["docker", "stop", "-t", "5", c.id],),
                               kwargs={"capture_output": True, "check": False})
    began = time.monotonic()
    stopper.start()
    wait_until(lambda: not daemon.mine(containers), timeout=1.0, interval=0.02,
               message="the entry to go within a second of `docker stop`")
    took = time.monotonic() - began
    assert running(c), "the container should still be in its grace period"
    print(f"\n[drain] entry gone {took:.3f} s after docker stop, container still running")  # noqa: T201
    stopper.join(15)
    assert not running(c)
    assert not daemon.mine(containers)
    assert daemon.logged("stopping: entries removed while it drains")


def test_kill_with_another_signal_keeps_the_entry(start_daemon, containers):
    daemon = start_daemon("--ttl", "120")
    c = containers.run(STUBBORN, ports={"80/tcp": LOCAL})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    c.kill(signal="SIGHUP")
    wait_until(lambda: saw_kill(daemon, c), message="the daemon to see the kill event")
    # A later event, handled after the kill: once it shows, the kill has been acted on.
    later = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: any(v["container_id"] == later.id
                           for v in daemon.mine(containers).values()),
               message="a later container registered")
    assert c.id in {v["container_id"] for v in daemon.mine(containers).values()}
    # Other containers on the shared dockerd may be stopped meanwhile: only ours counts.
    assert not daemon.logged("stopping: entries removed while it drains", cid=c.id[:12])


def test_a_container_that_survives_is_registered_again_not_earlier(start_daemon, containers):
    # A resync every second: none of them may bring the entry back during the grace period.
    daemon = start_daemon("--ttl", "120", "--resync", "1s")
    # The SDK's run() has no stop_timeout: the CLI sets Config.StopTimeout.
    cid = subprocess.run(
        ["docker", "run", "-d", "--label", f"{TEST_LABEL}=app", "-p", "127.0.0.1::80",
         "--stop-signal", "SIGUSR1", "--stop-timeout", "1", BUSYBOX_IMAGE,
         "sh", "-c", "trap '' TERM USR1; while true; do sleep 1; done"],
        capture_output=True, text=True, check=True).stdout.strip()
    containers.ids.append(cid)
    c = containers.client.containers.get(cid)
    opted_out = containers.run(STUBBORN, ports={"80/tcp": LOCAL},
                               labels={"registrator.drain": "false"})
    wait_until(lambda: len(daemon.mine(containers)) == 2, message="two entries")
    began = time.monotonic()
    c.kill(signal="SIGUSR1")  # its own StopSignal, which it ignores
    opted_out.kill(signal="SIGTERM")
    ids = lambda: {v["container_id"] for v in daemon.mine(containers).values()}  # noqa: E731
    wait_until(lambda: ids() == {opted_out.id}, timeout=2, message="only the opted-out entry")
    # Grace period: stop timeout 1 s + the 5 s margin.
    while time.monotonic() - began < 5.0:
        assert ids() == {opted_out.id}, "registered again during the grace period"
        time.sleep(0.1)
    wait_until(lambda: ids() == {c.id, opted_out.id}, timeout=5,
               message="registered again after the grace period")
    assert running(c)
    assert daemon.logged("still running after its stop timeout; registered again")
