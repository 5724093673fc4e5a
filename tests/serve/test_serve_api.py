"""SPEC §11 HTTP JSON API on both stores: the same objects and order as `ls --json`, filters,
blocking reads that return as soon as their answer changes (and not at other changes)."""

from __future__ import annotations

import json
import threading

from harness import wait_until
from serve_support import Serve, ls_json, put, put_host, record
from zk_harness import both_stores


def _fill(store, prefix):
    # ids do not follow host order, so "sorted by host then id" is really tested
    put(store, prefix, record("web", "b-web", 8081, host="h2", tags=["prod", "blue"]))
    put(store, prefix, record("web", "a-web", 8080, host="h1", tags=["prod"],
                              meta={"team": "core"}))
    put(store, prefix, record("web", "c-web", 8082, host="h1", address="::1"))
    put(store, prefix, record("db", "db-1", 5432, host="h2", protocol="tcp"))
    put_host(store, prefix, "h2", labels={"zone": "b"})
    put_host(store, prefix, "h1", labels={"zone": "a"})


@both_stores
def test_api_objects_and_order_are_those_of_ls_json(store, prefix, consumer):
    _fill(store, prefix)
    serve = Serve(consumer, store, prefix)
    wait_until(lambda: serve.json("/v1/services") == {"db": 1, "web": 3},
               message="the copy to hold the entries")
    web = serve.json("/v1/services/web")
    assert [e["id"] for e in web] == ["a-web", "c-web", "b-web"]  # host, then id
    listed = ls_json(store, prefix, "web")
    assert sorted(web, key=lambda e: e["id"]) == sorted(listed, key=lambda e: e["id"])
    for e in web:  # the same objects: nothing added, nothing left out
        assert e == next(x for x in listed if x["id"] == e["id"])
    assert serve.json("/v1/hosts") == ls_json(store, prefix, "--hosts")
    assert [h["hostname"] for h in serve.json("/v1/hosts")] == ["h1", "h2"]
    assert [e["id"] for e in serve.json("/v1/services/web?tag=blue")] == ["b-web"]
    assert [e["id"] for e in serve.json("/v1/services/web?host=h1")] == ["a-web", "c-web"]
    assert serve.json("/v1/services/web?tag=prod&host=h2")[0]["id"] == "b-web"
    assert serve.json("/v1/services/nope") == []
    _, headers, body = serve.get("/v1/services/web")
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert int(headers["x-registrator-index"]) > 0
    assert "x-registrator-stale" not in headers
    assert json.loads(body) == web
    metrics = serve.get("/metrics")[2].decode()
    assert "registrator_serve_entries 4.0" in metrics
    assert "registrator_serve_hosts 2.0" in metrics
    assert "registrator_serve_watching 1.0" in metrics
    assert 'registrator_serve_http_responses_total{code="200"}' in metrics


@both_stores
def test_prometheus_sd_format(store, prefix, consumer):
    _fill(store, prefix)
    serve = Serve(consumer, store, prefix)
    wait_until(lambda: len(serve.json("/v1/prometheus/sd")) == 4, message="4 target groups")
    groups = serve.json("/v1/prometheus/sd?service=web")
    assert [g["targets"] for g in groups] == [["127.0.0.1:8080"], ["[::1]:8082"],
                                              ["127.0.0.1:8081"]]
    first = groups[0]["labels"]
    assert first["__meta_registrator_service"] == "web"
    assert first["__meta_registrator_id"] == "a-web"
    assert first["__meta_registrator_host"] == "h1"
    assert first["__meta_registrator_tags"] == ",prod,"
    assert first["__meta_registrator_meta_team"] == "core"
    assert [g["labels"]["__meta_registrator_id"]
            for g in serve.json("/v1/prometheus/sd?service=web&tag=blue")] == ["b-web"]


class Held(threading.Thread):
    """One blocking read on a thread of its own."""

    def __init__(self, serve, path):
        super().__init__(daemon=True)
        self.serve, self.path, self.result = serve, path, None
        self.start()

    def run(self):
        self.result = self.serve.get(self.path, timeout=120)


@both_stores
def test_blocking_read_returns_when_its_answer_changes(store, prefix, consumer):
    put(store, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, store, prefix)
    wait_until(lambda: serve.json("/v1/services") == {"web": 1}, message="web in the copy")
    _, headers, _ = serve.get("/v1/services/web")
    index = int(headers["x-registrator-index"])
    held = Held(serve, f"/v1/services/web?index={index}&wait=60s")
    deleted = Held(serve, f"/v1/services/web?index={index}&wait=60s&host=h1")
    # A change to another service is in the copy, yet the read about web is still held.
    put(store, prefix, record("other", "o1", 9000))
    wait_until(lambda: "other" in serve.json("/v1/services"), message="other in the copy")
    assert held.is_alive()
    assert held.result is None
    put(store, prefix, record("web", "w2", 8081))
    held.join(20)  # well before the 60 s wait: the change ends it
    assert held.result is not None, "the held read did not return after the change"
    status, headers, body = held.result
    assert status == 200
    assert int(headers["x-registrator-index"]) > index
    assert [e["id"] for e in json.loads(body)] == ["w1", "w2"]
    deleted.join(20)
    assert deleted.result is not None
    # A delete ends a held read too (ZooKeeper reports no revision of its own for one).
    _, headers, _ = serve.get("/v1/services/web")
    index = int(headers["x-registrator-index"])
    held = Held(serve, f"/v1/services/web?index={index}&wait=60s")
    store.view.delete(f"{prefix}/services/web/w1")
    held.join(20)
    assert held.result is not None, "the held read did not return after the delete"
    assert [e["id"] for e in json.loads(held.result[2])] == ["w2"]
    assert int(held.result[1]["x-registrator-index"]) > index


def test_blocking_read_wait_ends_it_and_bad_parameters_are_400(store, prefix, consumer):
    put(store, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, store, prefix)
    _, headers, _ = serve.get("/v1/services/web")
    index = headers["x-registrator-index"]
    status, after, _ = serve.get(f"/v1/services/web?index={index}&wait=200ms")
    assert status == 200
    assert after["x-registrator-index"] == index
    for query in ("index=-1", "index=abc", "index=1&wait=forever", "index=" + "9" * 30):
        status, _, body = serve.get(f"/v1/services/web?{query}")
        assert status == 400, query
        assert "error" in json.loads(body)
