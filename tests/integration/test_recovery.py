"""Lifecycle under restarts and outages (SPEC §5)."""

from __future__ import annotations

import json
import signal

import pytest
from harness import EtcdServer, Proxy, free_port, wait_until
from zk_harness import both_stores

LOCAL = ("127.0.0.1", None)


def ids(entries):
    return {v["container_id"] for v in entries.values()}


@both_stores
def test_startup_registers_containers_already_running(start_daemon, containers):
    running = [containers.run(ports={"80/tcp": LOCAL}) for _ in range(3)]
    daemon = start_daemon()
    wait_until(lambda: ids(daemon.mine(containers)) == {c.id for c in running},
               message="all three registered by the startup reconcile")


@both_stores
def test_restart_after_kill9_cleans_leftovers_at_once(start_daemon, containers):
    # TTL far beyond the test's waits: only the takeover can remove the leftovers.
    first = start_daemon("--ttl", "300")
    keep = containers.run(ports={"80/tcp": LOCAL})
    gone = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: ids(first.mine(containers)) == {keep.id, gone.id}, message="both")
    old_lease = int(first.host_record()["lease"], 16)
    first.kill()
    gone.stop(timeout=1)
    second = start_daemon("--ttl", "300")
    view = second.etcd.view

    def taken_over():
        # The final state, not a step on the way: the deletes and the rewrite of the host
        # record are separate transactions, and the entries match between the two.
        record = second.host_record()
        lease = int(record["lease"], 16) if record else old_lease
        entries = second.mine(containers)
        return (lease != old_lease and ids(entries) == {keep.id}
                and all(view.lease_of(k) == lease for k in entries) and lease)

    wait_until(taken_over, message="the stopped container's entry removed by the new run, "
                                   "the kept one and the host record on its lease")
    wait_until(lambda: view.lease_ttl(old_lease) == -1, message="old lease revoked")


@both_stores
@pytest.mark.slow
def test_entries_expire_after_kill9(start_daemon, containers):
    daemon = start_daemon("--ttl", "3")
    containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    daemon.kill()
    wait_until(lambda: not daemon.etcd.view.keys(daemon.prefix + "/"), timeout=15,
               message="every key of the host to expire with the lease")


@both_stores
@pytest.mark.slow
def test_lease_loss_rewrites_everything_on_a_new_lease(start_daemon, containers):
    daemon = start_daemon("--ttl", "3")
    stays = containers.run(ports={"80/tcp": LOCAL})
    leaves = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: ids(daemon.mine(containers)) == {stays.id, leaves.id}, message="both")
    old_lease = int(daemon.host_record()["lease"], 16)
    daemon.send(signal.SIGSTOP)  # cut off past the TTL: etcd expires the lease
    try:
        wait_until(lambda: not daemon.etcd.view.keys(daemon.prefix + "/"), timeout=15,
                   message="the lease to expire")
        leaves.stop(timeout=1)
        arrives = containers.run(ports={"80/tcp": LOCAL})
    finally:
        daemon.send(signal.SIGCONT)
    wait_until(lambda: ids(daemon.mine(containers)) == {stays.id, arrives.id},
               message="entries back, matching what runs now")
    record = wait_until(daemon.host_record, message="host record back")
    new_lease = int(record["lease"], 16)
    assert new_lease != old_lease
    assert all(daemon.etcd.view.lease_of(k) == new_lease for k in daemon.mine(containers))


@both_stores
def test_resync_repairs_deleted_and_corrupted_entries(start_daemon, containers):
    daemon = start_daemon("--resync", "500ms")
    view = daemon.etcd.view
    a = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "a"})
    b = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "b"})
    entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) == 2 and e,
                         message="two entries")
    key_a = next(k for k, v in entries.items() if v["container_id"] == a.id)
    key_b = next(k for k, v in entries.items() if v["container_id"] == b.id)
    other_host = f"{daemon.prefix}/services/a/elsewhere:x:80"
    foreign = json.dumps({**entries[key_a], "host": "elsewhere", "id": "elsewhere:x:80",
                          "container_id": "f" * 64})
    junk = f"{daemon.prefix}/services/junk/entry"
    view.put(other_host, foreign)
    view.put(junk, "not json")
    view.delete(key_a)
    view.put(key_b, '{"wrong": "shape"}')
    wait_until(lambda: daemon.mine(containers) == entries, message="both entries repaired")
    assert view.items(other_host)[other_host].decode() == foreign  # another host's: untouched
    assert view.items(junk)[junk] == b"not json"
    # Not this host's (its index does not name it): never even read, so never warned about.
    view.delete(key_a)
    wait_until(lambda: daemon.mine(containers) == entries, message="repaired at a later resync")
    assert not daemon.logged("unreadable store entry left alone")


def test_store_unreachable_at_start_is_retried(start_daemon, containers, tmp_path):
    port = free_port()
    server = EtcdServer(host_port=port)
    server.port = port
    daemon = start_daemon(server=server, ready=False)
    wait_until(lambda: daemon.logged("store failed; retrying"), message="a retry log line")
    assert daemon.proc.poll() is None
    c = containers.run(ports={"80/tcp": LOCAL})
    server.start()
    try:
        daemon.wait_ready()
        wait_until(lambda: c.id in ids(daemon.mine(containers)), message="registered")
        assert not [e for e in daemon.log_events() if "Traceback" in json.dumps(e)]
    finally:
        daemon.kill()
        server.stop()


def test_docker_unreachable_at_start_is_retried_and_sigterm_exits_zero(start_daemon):
    daemon = start_daemon(ready=False, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    wait_until(lambda: daemon.logged("docker failed; retrying"), message="a retry log line")
    assert daemon.stop(signal.SIGTERM) == 0
    assert "Traceback" not in daemon.log_path.read_text()


def test_docker_stream_broken_reconnects_and_reconciles(start_daemon, containers, tmp_path):
    proxy = Proxy("/var/run/docker.sock", listen=str(tmp_path / "docker.sock"))
    try:
        daemon = start_daemon(env={"DOCKER_HOST": f"unix://{proxy.listen}"})
        before = containers.run(ports={"80/tcp": LOCAL})
        wait_until(lambda: ids(daemon.mine(containers)) == {before.id}, message="registered")
        proxy.cut()
        wait_until(lambda: daemon.logged("docker event stream broken")
                   or daemon.logged("docker event stream ended"), message="the break noticed")
        # Missed while cut off: only a reconcile after reconnecting can see these.
        before.stop(timeout=1)
        after = containers.run(ports={"80/tcp": LOCAL})
        proxy.restore()
        # Both: on a loaded machine another full reconcile (a resync, a freeze noticed) may
        # make the store match before the reconnect; the final state is after it.
        wait_until(lambda: daemon.logged("docker event stream reconnected; full reconcile")
                   and ids(daemon.mine(containers)) == {after.id},
                   message="the store to match after reconnecting")
    finally:
        proxy.cut()
