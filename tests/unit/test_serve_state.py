"""serve's pure logic: the snapshot indexes that decide when a held read ends, the
Prometheus SD labels, the held-request bounds (SPEC §11)."""

from __future__ import annotations

import json

from registrator.keys import KeySpace
from registrator.serve import views
from registrator.serve.limits import HeldLimit
from registrator.serve.state import ServeState
from registrator.stores.base import Change

KEYS = KeySpace("/p")


def _entry(name, sid, **extra):
    return json.dumps({"version": 1, "name": name, "id": sid, "address": "10.0.0.1",
                       "port": 80, "protocol": "tcp", "tags": [], "meta": {}, "host": "h1",
                       "container_id": "c", "container_name": "/c", "image": "i",
                       "health": "none", "registered_at": "2026-01-01T00:00:00+00:00",
                       **extra}).encode()


def _state_after(*batches):
    """A ServeState fed `batches` of changes as its follower would (store never used)."""
    state = ServeState(store=None, keys=KEYS)  # type: ignore[arg-type]
    follower = state.follower
    for number, batch in enumerate(batches):
        for change in batch:
            if change.op == "put":
                follower.registry.put(change.key, change.value)
            else:
                follower.registry.delete(change.key)
            follower.revision = max(follower.revision, change.revision)
        state._changed(batch, first=number == 0)  # noqa: SLF001 - the follower's callback
    return state


def test_a_change_moves_only_its_own_services_index():
    first = [Change("put", "/p/services/web/w1", _entry("web", "w1"), 10),
             Change("put", "/p/services/db/d1", _entry("db", "d1"), 11)]
    state = _state_after(first, [Change("put", "/p/services/web/w2", _entry("web", "w2"), 12)])
    snap = state.current()
    assert snap.revision == 12
    assert snap.index_of("web") == 12
    assert snap.index_of("db") == 11
    assert snap.services_index == 12
    assert snap.hosts_index == 11  # the first read counts for every part
    assert [e["id"] for e in snap.services["web"]] == ["w1", "w2"]


def test_a_delete_at_an_old_revision_still_moves_the_index():
    # ZooKeeper reports a delete at the revision already seen.
    first = [Change("put", "/p/services/web/w1", _entry("web", "w1"), 10),
             Change("put", "/p/services/web/w2", _entry("web", "w2"), 10)]
    state = _state_after(first, [Change("delete", "/p/services/web/w1", b"", 10)])
    snap = state.current()
    assert snap.revision == 11
    assert snap.index_of("web") == 11


def test_a_vanished_name_falls_back_to_the_services_index():
    first = [Change("put", "/p/services/web/w1", _entry("web", "w1"), 10)]
    state = _state_after(first, [Change("delete", "/p/services/web/w1", b"", 12)])
    snap = state.current()
    assert "web" not in snap.services
    assert "web" not in snap.service_index
    assert snap.index_of("web") == snap.services_index == 12


def test_config_values_are_kept_and_listeners_hear_each_snapshot():
    heard = []
    state = ServeState(store=None, keys=KEYS)  # type: ignore[arg-type]
    state.subscribe(heard.append)
    state.subscribe(lambda _snap: 1 / 0)  # a broken listener does not stop the others
    state.follower.revision = 5
    state._changed([Change("put", "/p/config/shop/defaults/url", b"x", 5)], first=True)  # noqa: SLF001
    state.follower.revision = 6
    state._changed([Change("delete", "/p/config/shop/defaults/url", b"", 6)], first=False)  # noqa: SLF001
    assert [dict(s.config) for s in heard] == [{"/p/config/shop/defaults/url": b"x"}, {}]
    assert [s.config_index for s in heard] == [5, 6]


def test_prometheus_labels():
    state = _state_after([Change("put", "/p/services/web/w1", _entry(
        "web", "w1", address="fd00::1", tags=["a", "b"], meta={"metrics-path": "/m", "x.y": "1"}),
        3)])
    (group,) = views.prometheus_sd(state.current())
    assert group["targets"] == ["[fd00::1]:80"]
    labels = group["labels"]
    assert labels["__meta_registrator_tags"] == ",a,b,"
    assert labels["__meta_registrator_meta_metrics_path"] == "/m"
    assert labels["__meta_registrator_meta_x_y"] == "1"
    assert views.prometheus_sd(state.current(), service="nope") == []


def test_held_limit_bounds_total_and_per_client():
    held = HeldLimit(total=3, per_client=2)
    assert held.acquire("a")
    assert held.acquire("a")
    assert not held.acquire("a")  # per client
    assert held.acquire("b")
    assert not held.acquire("c")  # in total
    held.release("a")
    assert held.acquire("c")
    with held.slot("d") as taken:
        assert not taken
    assert held.held == 3


def test_incremental_services_equal_a_full_sort_of_the_registry():
    """The snapshot is kept per name (only what a change touched is sorted again); after any
    sequence of batches it equals what Registry.services() computes from scratch."""
    import random  # noqa: PLC0415 - this test only

    rng = random.Random(22)  # noqa: S311 - test data, not security
    names, hosts = ["a", "b", "c", "web", "zz"], ["h1", "h2", "h3"]
    state = ServeState(store=None, keys=KEYS)  # type: ignore[arg-type]
    follower, revision = state.follower, 0
    for number in range(300):
        batch = []
        for _ in range(rng.randint(1, 6)):
            revision += 1
            name, sid = rng.choice(names), f"{rng.choice(hosts)}:c{rng.randint(1, 4)}"
            key = f"/p/services/{name}/{sid}"
            if rng.random() < 0.35:
                batch.append(Change("delete", key, b"", revision))
            elif rng.random() < 0.1:  # unreadable: the registry leaves it out
                batch.append(Change("put", key, b"{not json", revision))
            else:
                batch.append(Change("put", key, _entry(name, sid, host=rng.choice(hosts)),
                                    revision))
        for change in batch:
            if change.op == "put":
                follower.registry.put(change.key, change.value)
            else:
                follower.registry.delete(change.key)
        follower.revision = revision
        state._changed(batch, first=number == 0)  # noqa: SLF001 - the follower's callback
        expected = {n: tuple(e) for n, e in follower.registry.services().items()}
        snap = state.current()
        assert dict(snap.services) == expected
        assert list(snap.services) == list(expected)  # names in order too
        assert set(snap.service_index) == set(expected)
