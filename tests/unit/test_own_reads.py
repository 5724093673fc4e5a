"""A host reads O(its own entries) at startup, resync and lease recovery (issue 16): its
index range and its own keys by name, whatever the rest of the registry holds."""

from __future__ import annotations

import json

from fakes import FakeDocker, MemoryStore

from registrator.desired import Policy
from registrator.keys import KeySpace
from registrator.layouts import Renderer
from registrator.reconcile import Reconciler
from registrator.stores.base import KeyValue

PREFIX = "/reg"


def reconciler(store, docker, host):
    rec = Reconciler(store, docker, Policy(hostname=host, host_ip="10.0.0.1"),
                     Renderer(KeySpace(PREFIX), ("gliderlabs",)),
                     host_record=lambda lease: json.dumps({"lease": lease}))
    rec.lease = store.grant_lease(30)
    return rec


def test_full_reads_only_this_hosts_keys_however_big_the_fleet():
    store = MemoryStore()
    for h in range(50):  # 50 other hosts with 5 entries each
        docker = FakeDocker()
        for i in range(5):
            docker.add(f"c{h}-{i}", f"app{i}", 8000 + i)
        reconciler(store, docker, f"other{h}").full()
    mine = FakeDocker()
    mine.add("m1", "mine", 9001)
    rec = reconciler(store, mine, "me")
    rec.full()
    store.reads.clear()
    rec.full()
    assert store.reads[0] == ("/reg/index/me/", "prefix")
    prefixes = [k for k, kind in store.reads if kind == "prefix"]
    assert prefixes == ["/reg/index/me/"]
    keys = [k for k, kind in store.reads if kind == "key"]
    assert len(keys) <= 5  # host record, entry, its index key, its gliderlabs key
    assert not [k for k in keys if "other" in k]


def test_a_crashed_runs_leftovers_and_orphan_index_keys_are_found_through_the_index():
    store, docker = MemoryStore(), FakeDocker()
    docker.add("a", "a", 8001)
    docker.add("b", "b", 8002)
    first = reconciler(store, docker, "me")
    first.full()
    other = FakeDocker()
    other.add("x", "x", 8009)
    reconciler(store, other, "someone").full()
    del docker.containers["b"]  # stops while no daemon runs
    store.data.pop("/reg/services/web/me:a:80")  # drift: someone deleted a's entry
    orphan = "/reg/index/me/web/me:gone:80"  # an index key whose entry is long gone
    store.data[orphan] = KeyValue(orphan, b"/reg/services/web/me:gone:80", first.lease)
    second = reconciler(store, docker, "me")
    second.adopt = first.lease
    second.full()
    services = {k for k in store.data if k.startswith("/reg/services/")}
    assert services == {"/reg/services/web/me:a:80", "/reg/services/web/someone:x:80"}
    index = {k for k in store.data if k.startswith("/reg/index/me/")}
    assert index == {"/reg/index/me/web/me:a:80"}
    assert "/reg/web/me:b:80" not in store.data  # b's gliderlabs key went with it


def test_an_unreadable_entry_on_our_own_lease_is_removed_not_left():
    store, docker = MemoryStore(), FakeDocker()
    docker.add("a", "a", 8001)
    rec = reconciler(store, docker, "me")
    rec.full()
    key = "/reg/services/web/me:a:80"
    store.data[key] = KeyValue(key, b"garbage", rec.lease)
    del docker.containers["a"]
    rec.full()
    assert key not in store.data
    assert not [k for k in store.data if k.startswith("/reg/index/")]
