"""Hostile review of serve's HTTP API (issue 22): requests one client can send that must not
change what the others are answered."""

from __future__ import annotations

from harness import wait_until
from serve_support import Serve, put, record


def test_an_empty_filter_does_not_empty_the_answer_for_everyone(etcd, prefix, consumer):
    # `?tag=` and `?service=` (empty) were cached under the key of "no filter": one such
    # request, the first after a change, made /v1/services/web and /v1/prometheus/sd answer
    # [] to every client until the next change in the store.
    store = etcd
    serve = Serve(consumer, store, prefix)
    put(store, prefix, record("web", "w1", 8080, tags=["prod"]))
    # Wait on another route: the answers of the two under test are not cached yet.
    wait_until(lambda: serve.json("/v1/services") == {"web": 1}, message="web in the copy")
    assert serve.json("/v1/services/web?tag=") == []
    assert serve.json("/v1/prometheus/sd?service=") == []
    assert [e["id"] for e in serve.json("/v1/services/web")] == ["w1"]
    assert len(serve.json("/v1/prometheus/sd")) == 1
    assert serve.json("/v1/services/web?host=") == []
    assert [e["id"] for e in serve.json("/v1/services/web")] == ["w1"]
