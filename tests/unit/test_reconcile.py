"""The reconciler's diffing, against in-memory fakes (pure logic; the real store and Docker
are exercised in tests/integration)."""

from __future__ import annotations

import json

import pytest
from fakes import FakeDocker, MemoryStore
from structlog.testing import capture_logs

from registrator.desired import Policy
from registrator.keys import KeySpace
from registrator.layouts import Renderer
from registrator.reconcile import Reconciler
from registrator.stores.base import KeyValue

PREFIX = "/reg"
POLICY = Policy(hostname="h1", host_ip="10.0.0.1")


@pytest.fixture
def world():
    store, docker = MemoryStore(), FakeDocker()
    ticks = iter(f"t{i}" for i in range(1000))
    rec = Reconciler(store, docker, POLICY, Renderer(KeySpace(PREFIX), ("gliderlabs",)),
                     host_record=lambda lease: json.dumps({"lease": lease}),
                     clock=lambda: next(ticks))
    rec.lease = store.grant_lease(30)
    return store, docker, rec


def service_keys(store):
    return {k for k in store.data if k.startswith(f"{PREFIX}/services/")}


def test_sync_writes_only_the_difference(world):
    store, docker, rec = world
    docker.add("c1", "one", 8001)
    rec.sync(["c1"])
    assert service_keys(store) == {"/reg/services/web/h1:one:80"}
    assert store.data["/reg/web/h1:one:80"].value == b"10.0.0.1:8001"
    writes = len(store.applied)
    rec.sync(["c1"])  # nothing changed: an empty apply, no puts
    assert store.applied[writes:] == [([], [])]
    docker.containers["c1"]["State"]["Running"] = False
    rec.sync(["c1"])
    assert service_keys(store) == set()
    assert "/reg/web/h1:one:80" not in store.data


def test_full_deletes_own_stale_entries_only(world):
    store, docker, rec = world
    mine = {"name": "old", "id": "h1:gone:80", "address": "a", "port": 1, "protocol": "tcp",
            "tags": [], "meta": {}, "host": "h1", "container_id": "x", "container_name": "/gone",
            "image": "i", "health": "none"}
    theirs = {**mine, "host": "h2", "id": "h2:gone:80"}
    store.data["/reg/services/old/h1:gone:80"] = _kv("/reg/services/old/h1:gone:80", mine)
    store.data["/reg/services/old/h2:gone:80"] = _kv("/reg/services/old/h2:gone:80", theirs)
    store.data["/reg/old/h1:gone:80"] = _kv("/reg/old/h1:gone:80", "a:1")
    # A crashed run wrote its index entry with it; h2's is in h2's own index range.
    store.data["/reg/index/h1/old/h1:gone:80"] = _kv("/reg/index/h1/old/h1:gone:80",
                                                     "/reg/services/old/h1:gone:80")
    docker.add("c1", "one", 8001)
    rec.full()
    assert service_keys(store) == {"/reg/services/web/h1:one:80",
                                   "/reg/services/old/h2:gone:80"}
    assert "/reg/old/h1:gone:80" not in store.data  # its layout key went with it
    assert "/reg/index/h1/old/h1:gone:80" not in store.data
    assert "/reg/hosts/h1" in store.data


def test_full_rewrites_entries_on_another_lease_keeping_registered_at(world):
    store, docker, rec = world
    docker.add("c1", "one", 8001)
    rec.full()
    key = "/reg/services/web/h1:one:80"
    stamp = json.loads(store.data[key].value)["registered_at"]
    # A new run (new reconciler, new lease) takes over: same entry, moved to its lease.
    fresh = Reconciler(store, docker, POLICY, rec.renderer, rec.host_record, clock=lambda: "new")
    fresh.lease = store.grant_lease(30)
    fresh.adopt = rec.lease  # the daemon found it in the host record
    fresh.full()
    assert store.data[key].lease == fresh.lease
    assert json.loads(store.data[key].value)["registered_at"] == stamp


def test_full_repairs_own_corrupt_entry_and_leaves_foreign_junk_unread(world):
    store, docker, rec = world
    docker.add("c1", "one", 8001)
    rec.full()
    key = "/reg/services/web/h1:one:80"
    store.data[key] = _kv(key, "garbage")
    store.data["/reg/services/x/y"] = _kv("/reg/services/x/y", "junk")
    with capture_logs() as logs:
        rec.full()
        rec.full()
    assert json.loads(store.data[key].value)["port"] == 8001
    assert store.data["/reg/services/x/y"].value == b"junk"
    # Not ours and not read at all: a host reads only its own entries (issue 16).
    assert not [e for e in logs if e["event"] == "unreadable store entry left alone"]
    assert not [k for k, *_ in store.reads if k.startswith("/reg/services/x")]


def test_two_containers_claiming_one_key_first_keeps_it(world):
    store, docker, rec = world
    labels = {"registrator.name": "same", "registrator.id": "dup"}
    docker.add("a", "first", 8001, labels)
    docker.add("b", "second", 8002, labels)
    with capture_logs() as logs:
        rec.full()
    entry = json.loads(store.data["/reg/services/same/dup"].value)
    assert entry["container_id"] == "a"
    assert any(e["event"].startswith("service key held by another container") for e in logs)
    with capture_logs():
        rec.sync(["b"])  # an event for the loser does not steal the key either
    assert json.loads(store.data["/reg/services/same/dup"].value)["container_id"] == "a"


def test_label_warnings_are_logged_once_per_change(world):
    _, docker, rec = world
    docker.add("c1", "bad", 8001, {"registrator.name": "a/b"})
    with capture_logs() as logs:
        rec.full()
        rec.full()
        rec.sync(["c1"])
    assert len([e for e in logs if e["event"] == "bad label"]) == 1


def _kv(key, value):
    raw = value if isinstance(value, str) else json.dumps(value)
    return KeyValue(key, raw.encode(), 0)


def test_a_skip_that_is_not_about_a_label_is_not_called_a_bad_label():
    store, docker = MemoryStore(), FakeDocker()
    rec = Reconciler(store, docker, Policy(hostname="h1", host_ip="10.0.0.1", internal=True),
                     Renderer(KeySpace(PREFIX)), host_record=lambda _lease: "{}")
    rec.lease = store.grant_lease(30)
    docker.add("c1", "multi", 8001)
    docker.containers["c1"]["NetworkSettings"]["Networks"] = {
        "a": {"IPAddress": "172.18.0.2"}, "b": {"IPAddress": "172.19.0.2"}}
    with capture_logs() as logs:
        rec.full()
    skipped = [e for e in logs if e["event"] == "cannot register"]
    assert len(skipped) == 1
    assert "--network" in skipped[0]["problem"]
    assert not [e for e in logs if e["event"] == "bad label"]
