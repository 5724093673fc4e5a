"""Register on start, deregister on stop/kill/destroy, the entry's shape and lease."""

from __future__ import annotations

import signal

from harness import BUSYBOX_IMAGE, published_port, wait_until
from zk_harness import both_stores


@both_stores
def test_start_registers_full_entry_on_host_lease(start_daemon, containers):
    daemon = start_daemon("--host-label", "zone=a", "--host-label", "rack=7")
    c = containers.run(ports={"80/tcp": ("127.0.0.1", None)},
                       labels={"registrator.name": "web", "registrator.tags": "a,b",
                               "registrator.meta.team": "core"})
    key = f"{daemon.prefix}/services/web/{daemon.hostname}:{c.name}:80"
    entry = wait_until(lambda: daemon.services().get(key), message=f"{key} to appear")
    assert entry == {
        "version": 1, "name": "web", "id": f"{daemon.hostname}:{c.name}:80",
        "address": "127.0.0.1", "port": published_port(c, "80/tcp"), "protocol": "tcp",
        "tags": ["a", "b"], "meta": {"team": "core"}, "host": daemon.hostname,
        "container_id": c.id, "container_name": f"/{c.name}", "image": entry["image"],
        "health": "none", "registered_at": entry["registered_at"],
    }
    assert entry["image"] == BUSYBOX_IMAGE
    host = daemon.host_record()
    assert host["labels"] == {"zone": "a", "rack": "7"}
    assert host["address"] == "127.0.0.1"
    lease = int(host["lease"], 16)
    view = daemon.etcd.view
    assert view.lease_of(key) == lease
    assert view.lease_of(f"{daemon.prefix}/hosts/{daemon.hostname}") == lease


@both_stores
def test_stop_kill_and_destroy_remove_entries_at_once(start_daemon, containers):
    # A TTL far longer than the waits: removal can only come from the events.
    daemon = start_daemon("--ttl", "120")
    names = {}
    for how in ("stop", "kill", "destroy"):
        c = containers.run(ports={"80/tcp": ("127.0.0.1", None)},
                           labels={"registrator.name": f"svc-{how}"})
        names[how] = c
    wait_until(lambda: len(daemon.mine(containers)) == 3, message="three entries")
    names["stop"].stop(timeout=1)
    names["kill"].kill()
    names["destroy"].remove(force=True)
    wait_until(lambda: not daemon.mine(containers), message="all entries removed")


@both_stores
def test_sigterm_revokes_lease_and_exits_zero(start_daemon, containers):
    daemon = start_daemon("--ttl", "120")
    containers.run(ports={"80/tcp": ("127.0.0.1", None)})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.etcd.view.keys(daemon.prefix + "/") == set()


@both_stores
def test_keep_on_exit_leaves_entries_on_the_lease(start_daemon, containers):
    daemon = start_daemon("--ttl", "120", "--keep-on-exit")
    containers.run(ports={"80/tcp": ("127.0.0.1", None)})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    lease = int(daemon.host_record()["lease"], 16)
    assert daemon.stop(signal.SIGTERM) == 0
    assert len(daemon.mine(containers)) == 1
    assert daemon.etcd.view.lease_ttl(lease) > 0


@both_stores
def test_pause_removes_and_unpause_restores(start_daemon, containers):
    daemon = start_daemon()
    c = containers.run(ports={"80/tcp": ("127.0.0.1", None)})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    c.pause()
    wait_until(lambda: not daemon.mine(containers), message="entry removed on pause")
    c.unpause()
    wait_until(lambda: daemon.mine(containers), message="entry back on unpause")


HEALTH = {"test": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 300_000_000,
          "timeout": 1_000_000_000, "retries": 1}


def test_docker_healthcheck_gates_registration(start_daemon, containers):
    daemon = start_daemon()
    c = containers.run(ports={"80/tcp": ("127.0.0.1", None)}, healthcheck=HEALTH)
    # A witness started later proves the unhealthy one was looked at and left out.
    witness = containers.run(ports={"80/tcp": ("127.0.0.1", None)})
    wait_until(lambda: {v["container_id"] for v in daemon.mine(containers).values()}
               == {witness.id}, message="only the witness")
    assert c.exec_run("touch /tmp/ok").exit_code == 0
    entry = wait_until(lambda: next((v for v in daemon.mine(containers).values()
                                     if v["container_id"] == c.id), None),
                       message="registered once healthy")
    assert entry["health"] == "healthy"
    assert c.exec_run("rm /tmp/ok").exit_code == 0
    wait_until(lambda: c.id not in {v["container_id"] for v in daemon.mine(containers).values()},
               message="removed once unhealthy")


def test_register_unhealthy_keeps_entry_with_its_health(start_daemon, containers):
    daemon = start_daemon("--register-unhealthy")
    c = containers.run(ports={"80/tcp": ("127.0.0.1", None)}, healthcheck=HEALTH)
    wait_until(lambda: daemon.mine(containers), message="registered while starting")
    entry = wait_until(lambda: next((v for v in daemon.mine(containers).values()
                                     if v["health"] == "unhealthy"), None),
                       message="entry carrying health=unhealthy")
    assert entry["container_id"] == c.id
