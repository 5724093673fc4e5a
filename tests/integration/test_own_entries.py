"""A host reads and cleans only its own entries (issue 16), with another host's entries in
the same prefix: crash and restart, drift repair, lease loss. The other host's entries are
never touched (same values, same create revisions)."""

from __future__ import annotations

import signal

import pytest
from harness import wait_until

LOCAL = ("127.0.0.1", None)


def snapshot(view, prefix, host, names):
    """{key: (value, create_revision)} of one host's keys (entries and index) for the
    test's own containers (`names`): the shared dockerd may start others meanwhile, which
    a daemon without --explicit registers too."""
    out = {}
    for value, meta in view.client.get_prefix(prefix + "/"):
        key = meta.key.decode()
        if (f"/{host}" in key or f"{host}:" in key) and any(n in key for n in names):
            out[key] = (value, meta.create_revision)
    return out


def mine(daemon, containers):
    return {v["container_id"] for k, v in daemon.services().items()
            if v["host"] == daemon.hostname and v["container_id"] in set(containers.ids)}


@pytest.mark.slow
def test_crash_drift_and_lease_loss_clean_only_this_hosts_entries(start_daemon, containers):
    keep = containers.run(ports={"80/tcp": LOCAL})
    gone = containers.run(ports={"80/tcp": LOCAL})
    other = start_daemon(hostname="other-host")
    first = start_daemon("--ttl", "300", "--resync", "500ms")
    both = {keep.id, gone.id}
    wait_until(lambda: mine(first, containers) == both and mine(other, containers) == both,
               message="both hosts registered both containers")
    view = first.etcd.view
    names = (keep.name, gone.name)
    theirs = snapshot(view, first.prefix, "other-host", names)
    assert any("/index/other-host/" in k for k in theirs)

    # Crash, a container stops meanwhile, restart: its leftover goes at once, not at TTL.
    first.kill()
    gone.stop(timeout=1)
    wait_until(lambda: mine(other, containers) == {keep.id}, message="the other host followed")
    theirs = snapshot(view, first.prefix, "other-host", names)
    second = start_daemon("--ttl", "300", "--resync", "500ms")
    wait_until(lambda: mine(second, containers) == {keep.id}, message="leftover removed")
    index = view.keys(f"{first.prefix}/index/{second.hostname}/")
    assert len([k for k in index if keep.name in k]) == 1
    assert not [k for k in index if gone.name in k]

    # Drift: someone deletes this host's entry and its index key; resync repairs both.
    entry = next(k for k, v in second.services().items() if v["host"] == second.hostname
                 and v["container_id"] == keep.id)
    view.delete(entry)
    view.delete(next(iter(index)))
    wait_until(lambda: entry in view.keys(entry) and view.keys(f"{first.prefix}/index/"
                                                               f"{second.hostname}/"),
               message="entry and index repaired")

    # Lease loss: frozen past the TTL would take 300 s; revoke the lease instead.
    lease = int(second.host_record()["lease"], 16)
    view.client.revoke_lease(lease)
    wait_until(lambda: (r := second.host_record()) and int(r["lease"], 16) != lease,
               timeout=20, message="a new lease")
    wait_until(lambda: mine(second, containers) == {keep.id}, message="rewritten")
    assert snapshot(view, first.prefix, "other-host", names) == theirs  # untouched throughout
    second.send(signal.SIGTERM)
