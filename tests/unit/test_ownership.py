"""Who holds a key two containers ask for, on the event path and the resync path alike
(issue 11: same-name redeploys and blue/green ids), and entries the store refuses."""

from __future__ import annotations

import json

import pytest
from fakes import FakeDocker, MemoryStore
from structlog.testing import capture_logs

from registrator.desired import Policy
from registrator.keys import KeySpace
from registrator.layouts import Renderer
from registrator.reconcile import Reconciler

PREFIX = "/reg"
POLICY = Policy(hostname="h1", host_ip="10.0.0.1")
SHARED = {"registrator.name": "shop", "registrator.id": "live"}
KEY = "/reg/services/shop/live"
WAIT = "service key held by another container; this one takes over when that one lets go"


@pytest.fixture
def world():
    store, docker = MemoryStore(), FakeDocker()
    rec = Reconciler(store, docker, POLICY, Renderer(KeySpace(PREFIX), ("gliderlabs",)),
                     host_record=lambda lease: json.dumps({"lease": lease}))
    rec.lease = store.grant_lease(30)
    return store, docker, rec


def holder(store, key=KEY):
    kv = store.data.get(key)
    return json.loads(kv.value)["container_id"] if kv else None


def test_same_name_redeploy_in_one_batch_registers_the_new_container(world):
    store, docker, rec = world
    docker.add("old", "app", 8001)
    rec.sync(["old"])
    key = "/reg/services/web/h1:app:80"
    assert holder(store, key) == "old"
    # `docker rm -f app && docker run --name app`: both hints land in one batch.
    del docker.containers["old"]
    docker.add("new", "app", 8002)
    with capture_logs() as logs:
        rec.sync(["old", "new"])
    assert holder(store, key) == "new"
    assert store.data["/reg/web/h1:app:80"].value == b"10.0.0.1:8002"
    assert not [e for e in logs if e["event"] == WAIT]
    rec.sync(["new"])  # and it stays
    assert holder(store, key) == "new"


def test_same_name_redeploy_new_container_first_in_the_batch(world):
    store, docker, rec = world
    docker.add("zzz", "app", 8001)
    rec.sync(["zzz"])
    del docker.containers["zzz"]
    docker.add("aaa", "app", 8002)
    rec.sync(["aaa", "zzz"])
    assert holder(store, "/reg/services/web/h1:app:80") == "aaa"


def test_blue_green_waiter_promoted_on_the_holders_stop_event(world):
    store, docker, rec = world
    docker.add("blue", "blue", 8001, SHARED)
    rec.sync(["blue"])
    docker.add("green", "green", 8002, SHARED)
    with capture_logs() as logs:
        rec.sync(["green"])
        rec.sync(["green"])
        rec.full()
        rec.full()
    assert holder(store) == "blue"
    assert len([e for e in logs if e["event"] == WAIT]) == 1  # said once, not per look
    docker.containers["blue"]["State"]["Running"] = False
    rec.sync(["blue"])  # only the holder's event: the waiter is looked at with it
    assert holder(store) == "green"
    assert store.data["/reg/shop/live"].value == b"10.0.0.1:8002"


def test_resync_and_events_pick_the_same_holder(world):
    store, docker, rec = world
    # "b" runs first and holds the key; "a" (lower id) comes later and must not take it at
    # the next resync just because the resync path sorts by id.
    docker.add("b", "b", 8002, SHARED)
    rec.sync(["b"])
    docker.add("a", "a", 8001, SHARED)
    with capture_logs():
        rec.sync(["a"])
        assert holder(store) == "b"
        rec.full()
    assert holder(store) == "b"


def test_a_new_run_keeps_the_holder_the_store_names(world):
    store, docker, rec = world
    docker.add("b", "b", 8002, SHARED)
    rec.sync(["b"])
    docker.add("a", "a", 8001, SHARED)
    fresh = Reconciler(store, docker, POLICY, rec.renderer, rec.host_record)
    fresh.lease = store.grant_lease(30)
    fresh.adopt = rec.lease
    with capture_logs():
        fresh.full()
    assert holder(store) == "b"


class RefusingStore(MemoryStore):
    """Refuses single values over `limit` bytes, as etcd does past --max-request-bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def apply(self, puts, deletes, lease):
        ok = [(k, v) for k, v in puts if len(v) <= self.limit]
        super().apply(ok, deletes, lease)
        return [k for k, v in puts if len(v) > self.limit]


def test_refused_entry_is_skipped_with_one_warning_and_the_rest_goes_on():
    store, docker = RefusingStore(limit=2000), FakeDocker()
    rec = Reconciler(store, docker, POLICY, Renderer(KeySpace(PREFIX), ("gliderlabs",)),
                     host_record=lambda lease: json.dumps({"lease": lease}))
    rec.lease = store.grant_lease(30)
    docker.add("big", "big", 8001, {"registrator.meta.blob": "x" * 5000})
    docker.add("small", "small", 8002)
    with capture_logs() as logs:
        rec.full()
        rec.full()
        rec.sync(["big", "small"])
    refused = [e for e in logs if e["event"].startswith("store refused the entry")]
    assert len(refused) == 1
    assert refused[0]["container"] == "big"
    assert "/reg/services/web/h1:small:80" in store.data
    assert "/reg/hosts/h1" in store.data
    # Its small gliderlabs key was written alongside and is taken back.
    assert "/reg/web/h1:big:80" not in store.data
    assert "/reg/services/web/h1:big:80" not in store.data
