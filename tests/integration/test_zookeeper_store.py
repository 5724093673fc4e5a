"""The ZooKeeper store module against a real ZooKeeper (Debian's jars): what only a store-level
test can set up, such as a znode changed between a transaction's plan and its commit."""

from __future__ import annotations

import pytest
from harness import new_prefix, wait_until
from zk_harness import ZooKeeperServer

from registrator.errors import LeaseLostError, StoreUnavailableError
from registrator.settings import zookeeper_settings
from registrator.stores.zookeeper import ZooKeeperStore


@pytest.fixture
def zk_store(zookeeper):
    store = ZooKeeperStore(zookeeper_settings(zookeeper.connect, None, None, None))
    prefix = new_prefix()
    yield store, prefix
    store.close()
    zookeeper.view.delete_prefix(prefix + "/")


def test_a_conflict_in_the_first_op_of_a_transaction_is_planned_again(zookeeper, zk_store):
    """ZooKeeper reports the ops after a failed one as RuntimeInconsistency: a conflict in
    any op but the last must re-plan like one in the last, not fail the write."""
    store, prefix = zk_store
    seed, a, b = f"{prefix}/x/seed", f"{prefix}/x/a", f"{prefix}/x/b"
    assert store.apply([(seed, "s")], [], 0) == []  # the parents exist and are known
    plan = store._plan  # noqa: SLF001 - the seam between the read and the commit
    raced: list[str] = []

    def racing_plan(ops, session):
        planned = plan(ops, session)
        if not raced:  # someone else creates `a` between our read and our commit
            raced.append(a)
            zookeeper.view.put(a, "theirs")
        return planned

    store._plan = racing_plan  # noqa: SLF001
    assert store.apply([(a, "1"), (b, "2")], [], 0) == []
    assert raced == [a]
    assert zookeeper.view.items(f"{prefix}/x/") == {seed: b"s", a: b"1", b: b"2"}


def test_a_refused_session_is_told_apart_on_a_server_that_enforces_auth():
    """The probe that asks the servers for their last zxid must authenticate as the store
    does: on a server that enforces digest auth (enforce.auth.enabled), an unauthenticated
    probe gets no answer, so a session refused for good looked like an outage forever."""
    server = ZooKeeperServer(
        extra_config="enforce.auth.enabled=true\nenforce.auth.schemes=digest\n"
                     "authProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n",
        auth=("reg", "s3cret")).start()
    store = ZooKeeperStore(zookeeper_settings(server.connect, "reg", "s3cret", None,
                                              session_timeout=10))
    try:
        server.bump_zxid()
        prefix = new_prefix()
        lease = store.grant_lease(10)
        assert store.apply([(f"{prefix}/hosts/h", "{}")], [], lease) == []
        server.restart_empty()

        def new_session() -> bool:
            try:
                store.refresh_lease(lease)
            except LeaseLostError:
                return True
            except StoreUnavailableError:
                return False
            return False

        wait_until(new_session, timeout=20, message="the refused session given up")
        assert store.grant_lease(10) != lease
    finally:
        store.close()
        server.stop()


def test_writes_go_on_after_the_chroot_was_deleted_under_them(zookeeper):
    """An operator's `deleteall` of the chroot (the daemon's ephemerals with it): on etcd the
    next resync writes everything again; here every create failed with NoNodeError under
    the missing chroot, and the store said "the znodes kept changing" until a restart."""
    chroot = new_prefix()
    store = ZooKeeperStore(zookeeper_settings(zookeeper.connect + chroot, None, None, None))
    try:
        lease = store.grant_lease(30)
        assert store.apply([("/p/hosts/h", "1")], [], lease) == []
        zookeeper.view.delete_prefix(chroot + "/")  # the chroot znode itself, recursively
        assert zookeeper.view.client.exists(chroot) is None
        assert store.apply([("/p/hosts/h", "2"), ("/p/services/s/1", "x")], [], lease) == []
        assert zookeeper.view.items(chroot + "/p/") == {f"{chroot}/p/hosts/h": b"2",
                                                        f"{chroot}/p/services/s/1": b"x"}
    finally:
        store.close()
        zookeeper.view.delete_prefix(chroot + "/")
