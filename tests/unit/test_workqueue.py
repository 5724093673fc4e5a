from __future__ import annotations

import threading

from registrator.stores.base import batches
from registrator.workqueue import WorkQueue


def test_hints_coalesce_in_order():
    q = WorkQueue()
    for cid in ("a", "b", "a", "c"):
        q.container(cid)
    work = q.take(0)
    assert work is not None
    assert (work.full, work.containers) == (False, ["a", "b", "c"])
    assert q.take(0) is None


def test_full_swallows_container_hints():
    q = WorkQueue()
    q.container("a")
    q.full()
    q.lease_lost(7)
    work = q.take(0)
    assert work is not None
    assert (work.full, work.containers, work.lost_leases) == (True, [], {7})


def test_take_wakes_on_a_hint_from_another_thread_and_on_close():
    q = WorkQueue()
    threading.Timer(0.05, q.container, args=("x",)).start()
    work = q.take(10)
    assert work is not None
    assert work.containers == ["x"]
    threading.Timer(0.05, q.close).start()
    assert q.take(10) is None
    assert q.closed


def test_batches_respect_the_transaction_limit():
    items = list(range(300))
    chunks = batches(items)
    assert [len(c) for c in chunks] == [128, 128, 44]
    assert [x for c in chunks for x in c] == items


def test_batches_respect_a_byte_budget_and_keep_order():
    items = [100, 100, 900, 50, 2000, 10, 10]
    chunks = batches(items, size=3, max_bytes=1000, weight=lambda w: w)
    # 100+100 fits, +900 would not; an item over the budget goes alone.
    assert [list(c) for c in chunks] == [[100, 100], [900, 50], [2000], [10, 10]]
    assert all(sum(c) <= 1000 or len(c) == 1 for c in chunks)
