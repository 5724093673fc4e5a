"""The store seam the consumers stand on: a revisioned read and a watch, against real etcd."""

from __future__ import annotations

import threading
import time

import pytest
from harness import EtcdServer, free_port, new_prefix, wait_until

from registrator.errors import CompactedError, StoreUnavailableError
from registrator.settings import store_settings
from registrator.stores.etcd import EtcdStore


def open_store(endpoint: str) -> EtcdStore:
    settings = store_settings(etcd_endpoints=endpoint, etcd_cacert=None, etcd_cert=None,
                              etcd_key=None, etcd_user=None, etcd_password_file=None,
                              etcd_timeout="2s", etcd_password=None)
    return EtcdStore(settings)


def drain(stream, seconds):
    """Read until the stream raises (wait_until would swallow the exception)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stream.next_batch(0.2)
    pytest.fail("the stream raised nothing")


@pytest.fixture
def store(etcd):
    s = open_store(etcd.endpoint)
    yield s
    s.close()


def test_snapshot_then_watch_sees_changes_in_order(etcd, store):
    prefix = new_prefix()
    etcd.view.put(prefix + "/a", "1")
    kvs, revision = store.snapshot(prefix + "/")
    assert [(kv.key, kv.value) for kv in kvs] == [(prefix + "/a", b"1")]
    stream = store.watch(prefix + "/", revision + 1)
    try:
        etcd.view.put(prefix + "/b", "2")
        etcd.view.delete(prefix + "/a")
        etcd.view.put("/elsewhere" + prefix, "x")  # outside the prefix: never seen
        seen = []
        wait_until(lambda: seen.extend(stream.next_batch(0.2) or []) or len(seen) >= 2,
                   message="two changes")
        assert [(c.op, c.key, c.value) for c in seen] == [
            ("put", prefix + "/b", b"2"), ("delete", prefix + "/a", b"")]
        assert revision < seen[0].revision < seen[1].revision
    finally:
        stream.close()
        etcd.view.delete("/elsewhere" + prefix)


def test_close_from_another_thread_wakes_the_reader(store):
    stream = store.watch(new_prefix() + "/", 0)
    result = []
    reader = threading.Thread(target=lambda: result.append(stream.next_batch(None)))
    reader.start()
    threading.Timer(0.2, stream.close).start()
    reader.join(10)
    assert not reader.is_alive()
    assert result == [None]


def test_compacted_start_revision_raises_compacted_error(etcd, store):
    prefix = new_prefix()
    etcd.view.put(prefix + "/a", "1")
    _, old = store.snapshot(prefix + "/")
    etcd.view.put(prefix + "/a", "2")
    _, now = store.snapshot(prefix + "/")
    etcd.view.client.compact(now)
    # etcd confirms the watch first and cancels it in the next response.
    with pytest.raises(CompactedError, match="compacted"):  # noqa: PT012
        stream = store.watch(prefix + "/", old)
        drain(stream, 10)


def test_unreachable_store_raises_store_unavailable():

    store = open_store(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(StoreUnavailableError):
            store.snapshot("/x/")
    finally:
        store.close()


@pytest.mark.slow
def test_stream_breaks_on_etcd_restart_and_resumes(docker_client):

    server = EtcdServer(host_port=free_port()).start()
    store = open_store(server.endpoint)
    try:
        prefix = new_prefix()
        _, revision = store.snapshot(prefix + "/")
        stream = store.watch(prefix + "/", revision + 1)
        server.container.get_wrapped_container().restart(timeout=5)
        with pytest.raises(StoreUnavailableError):
            drain(stream, 30)
        def resumed():
            s = store.watch(prefix + "/", revision + 1)
            s.close()
            return True
        wait_until(resumed, timeout=30, message="watch to open again")
    finally:
        store.close()
        server.stop()
