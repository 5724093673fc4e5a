"""Hostile review of serve's HTTP API (issue 22): requests one client can send that must not
change what the others are answered."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

from harness import Proxy, wait_until
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


def test_a_held_read_answered_after_the_store_returns_is_not_marked_stale(etcd, prefix,
                                                                           consumer):
    # X-Registrator-Stale was decided when the request came in: a blocking read made while
    # the store was away, answered with the new copy once it was back, still said "stale".
    put(etcd, prefix, record("web", "w1", 8080))
    proxy = Proxy(("127.0.0.1", etcd.port))
    try:
        serve = Serve(consumer, etcd, prefix, via=["--etcd-endpoints",
                                                   f"http://127.0.0.1:{proxy.listen[1]}"])
        wait_until(lambda: serve.json("/v1/services") == {"web": 1}, message="w1 in the copy")
        proxy.cut()
        wait_until(lambda: "x-registrator-stale" in serve.get("/v1/services/web")[1],
                   message="answers marked stale")
        index = serve.get("/v1/services/web")[1]["x-registrator-index"]
        held: list[tuple[int, dict[str, str], bytes]] = []
        reader = threading.Thread(target=lambda: held.append(
            serve.get(f"/v1/services/web?index={index}&wait=60s", timeout=70)))
        reader.start()
        wait_until(lambda: _held(serve) == 1, message="the read to be held")
        put(etcd, prefix, record("web", "w2", 8081))
        proxy.restore()
        reader.join(70)
        status, headers, body = held[0]
        assert status == 200
        assert [e["id"] for e in json.loads(body)] == ["w1", "w2"]
        assert "x-registrator-stale" not in headers, headers
    finally:
        proxy.cut()


def _held(serve):
    text = serve.get("/metrics")[2].decode()
    line = next(x for x in text.splitlines() if x.startswith("registrator_serve_held_requests"))
    return int(float(line.split()[1]))


def _rss_mb(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_requests_for_long_unknown_names_do_not_grow_memory(etcd, prefix, consumer):
    # Before: every answer was cached under its request's parameters until the next change,
    # up to 4,096 of them: names of 15 KB (the head allows 16) took ~60 MB per 4,000
    # requests, from one client in a few seconds, held while the registry was quiet.
    put(etcd, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, etcd, prefix)
    pid = serve.process.proc.pid
    conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=10)
    for i in range(200):  # warm up (allocator, routes) before the first measure
        conn.request("GET", f"/v1/services/w{i:05d}")
        conn.getresponse().read()
    before = _rss_mb(pid)
    for i in range(3000):
        conn.request("GET", f"/v1/services/{i:05d}" + "x" * 15000)
        response = conn.getresponse()
        assert response.read() == b"[]"
    conn.close()
    grown = _rss_mb(pid) - before
    print(f"RSS grew {grown:.1f} MB")  # noqa: T201
    assert grown < 15, f"RSS grew {grown:.0f} MB"
    assert [e["id"] for e in serve.json("/v1/services/web")] == ["w1"]
