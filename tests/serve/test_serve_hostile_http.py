"""Hostile review of serve's HTTP side (issue 22), on a real serve over etcd: event-stream
clients that go away, bytes that are not ASCII in the request line, SIGTERM with requests
held open."""

from __future__ import annotations

import json
import socket
import time

from harness import wait_until
from serve_support import Serve, put, read_all, record, status_of

from registrator.serve.pages import MAX_ROWS


def _raw(port, data, timeout=10.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    return sock


def _head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data




def _held(serve):
    text = serve.get("/metrics")[2].decode()
    line = next(x for x in text.splitlines() if x.startswith("registrator_serve_held_requests"))
    return int(float(line.split()[1]))


EVENTS = b"GET /ui/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def test_event_streams_give_their_slot_back_when_the_client_leaves(etcd, prefix, consumer):
    put(etcd, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, etcd, prefix)
    for _round in range(3):  # 3 x 40 streams: more than the 64 slots of one address
        streams = [_raw(serve.port, EVENTS) for _ in range(40)]
        assert {status_of(_head(s)) for s in streams} == {200}
        for sock in streams:
            sock.close()
        wait_until(lambda: _held(serve) == 0, timeout=30,
                   message="the streams' slots given back")
    last = _raw(serve.port, EVENTS)
    assert status_of(_head(last)) == 200
    last.close()


def test_bytes_that_are_not_ascii_in_the_path_get_an_error_answer(etcd, prefix, consumer):
    put(etcd, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, etcd, prefix)
    for path in (b"/v1/services/\xff\xfe", b"/v1/services/w\xc3\xa9b", b"/ui/services/\x80"):
        raw = read_all(_raw(serve.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert status_of(raw) in (400, 404), (path, raw[:200])
    for path in ("/v1/services/%ff%fe", "/v1/services/a%00b", "/v1/services/a%2Fb",
                 "/ui/services/%3Cscript%3E", "/v1/services/..%2F..%2Fhosts"):
        status, _, body = serve.get(path)
        assert status in (200, 400, 404), (path, status)
        assert b"<script>" not in body
    assert serve.json("/v1/services") == {"web": 1}


def test_sigterm_with_held_reads_and_streams_exits_0_promptly(etcd, prefix, consumer):
    put(etcd, prefix, record("web", "w1", 8080))
    serve = Serve(consumer, etcd, prefix)
    index = serve.get("/v1/services/web")[1]["x-registrator-index"]
    held = [_raw(serve.port, f"GET /v1/services/web?index={index}&wait=5m HTTP/1.1\r\n"
                             "Host: x\r\n\r\n".encode()) for _ in range(10)]
    streams = [_raw(serve.port, EVENTS) for _ in range(10)]
    for sock in streams:
        _head(sock)
    wait_until(lambda: _held(serve) == 20, message="20 held requests")
    started = time.monotonic()
    code = serve.process.stop(timeout=30)
    took = time.monotonic() - started
    for sock in held + streams:
        sock.close()
    assert code == 0, serve.process.log_path.read_text()[-2000:]
    assert took < 10, f"SIGTERM took {took:.1f}s with requests held"
    # Ended by serve, not cancelled by uvicorn after its grace period (a traceback each).
    assert "timeout graceful shutdown exceeded" not in serve.process.log_path.read_text()


def test_the_page_of_a_service_with_thousands_of_instances_is_bounded(etcd, prefix, consumer):
    # Before: every instance was a row. 20,000 instances made a 16 MB page that took over a
    # second of the event loop to render, during which no other request (API, held reads)
    # was answered; and every open tab fetched it again at every change in the registry.
    client = etcd.view.client
    count = 1500
    for start in range(0, count, 100):
        client.transaction(compare=[], failure=[], success=[
            client.transactions.put(f"{prefix}/services/big/b{i:05d}", json.dumps(
                record("big", f"b{i:05d}", 8000, address=f"10.0.{i // 250}.{i % 250}")))
            for i in range(start, min(count, start + 100))])
    serve = Serve(consumer, etcd, prefix)
    wait_until(lambda: serve.json("/v1/services") == {"big": count}, timeout=30,
               message="every instance in the copy")
    status, _, body = serve.get("/ui/services/big")
    assert status == 200
    page = body.decode()
    assert page.count('<td data-label="Address">') == MAX_ROWS
    assert f"{MAX_ROWS} of {count}" in page
    assert "/v1/services/big" in page  # where the whole list is
    assert len(serve.json("/v1/services/big")) == count  # the API is not cut
