"""The ZooKeeper store module against a real ZooKeeper (Debian's jars): what only a store-level
test can set up, such as a znode changed between a transaction's plan and its commit."""

from __future__ import annotations

import pytest
from harness import new_prefix

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
