"""Hostile review of serve (issue 22): a store that comes back EMPTY (etcd's data wiped, a
ZooKeeper started on an empty data directory) must be shown as it is now, not as the copy
taken before it went away."""

from __future__ import annotations

import shutil

from harness import EtcdServer, free_port, wait_until
from serve_support import Serve, put, record
from zk_harness import ZkView, ZooKeeperServer


def _ids(serve):
    return [e["id"] for e in serve.json("/v1/services/web")]


def test_etcd_wiped_and_restarted_is_served_as_it_is_now(consumer):
    # Before: the watch was resumed from the old (high) revision on the new etcd, which
    # waits for that revision to come: serve showed the old entries, as current, forever.
    port = free_port()
    old = EtcdServer(host_port=port).start()
    prefix = "/r22-reset"
    try:
        put(old, prefix, record("web", "old", 8080))
        for i in range(30):  # the old store's revision well above what the new one reaches
            put(old, prefix, record("other", "o", 9000 + i))
        serve = Serve(consumer, old, prefix)
        wait_until(lambda: _ids(serve) == ["old"], message="the old entry in the copy")
    finally:
        old.stop()
    new = EtcdServer(host_port=port).start()
    try:
        put(new, prefix, record("web", "new", 8081))
        wait_until(lambda: _ids(serve) == ["new"], timeout=20,
                   message="serve to show the new store's entries, not the old copy")
        wait_until(lambda: serve.json("/v1/services") == {"web": 1},
                   message="the old store's other service gone")
        assert "x-registrator-stale" not in serve.get("/v1/services/web")[1]
    finally:
        new.stop()


def test_zookeeper_on_an_empty_data_dir_is_served_as_it_is_now(consumer):
    # Before: kazoo kept offering the old server's last zxid, and ZooKeeper refuses a client
    # that has seen a later one than itself: serve never reconnected (its answers marked
    # stale, /healthz 503, for ever); the daemons, on the same client, never re-registered.
    zk = ZooKeeperServer().start()
    prefix = "/r22-reset"
    try:
        put(zk, prefix, record("web", "old", 8080))
        for i in range(30):
            put(zk, prefix, record("other", "o", 9000 + i))
        serve = Serve(consumer, zk, prefix)
        wait_until(lambda: _ids(serve) == ["old"], message="the old entry in the copy")
        zk.kill()
        shutil.rmtree(zk.dir / "data")
        # The tests' own client has seen the old server's zxids: ZooKeeper refuses it on a
        # server that has not (as it refuses serve's), so a client of its own.
        zk.view.close()
        zk.view = ZkView(zk)
        zk.start()
        put(zk, prefix, record("web", "new", 8081))
        wait_until(lambda: _ids(serve) == ["new"], timeout=90,
                   message="serve to show the new store's entries, not the old copy")
        wait_until(lambda: serve.json("/v1/services") == {"web": 1},
                   message="the old store's other service gone")
    finally:
        zk.stop()
