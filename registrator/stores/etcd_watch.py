"""Revisioned reads and watches on etcd for the read-only consumers (SPEC §8). Kept apart from
etcd.py, which stays about the daemon's session; like it, this module is allowed the etcd
client and gRPC, and turns their exceptions into registrator's."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from pyetcd import events as etcd_events
from pyetcd import exceptions as etcd_exc

from registrator.errors import CompactedError, StoreUnavailableError
from registrator.stores.base import Change, KeyValue

if TYPE_CHECKING:
    from pyetcd.client import MultiEndpointEtcd3Client

Converter = Callable[[BaseException], Exception]
_CLOSED = object()  # our own end marker: the client's callback passes None for a stream end


def snapshot(client: MultiEndpointEtcd3Client, prefix: str) -> tuple[list[KeyValue], int]:
    response = client.get_prefix_response(prefix)
    kvs = [KeyValue(kv.key.decode("utf-8", "replace"), kv.value, int(kv.lease))
           for kv in response.kvs]
    return kvs, int(response.header.revision)


class EtcdChangeStream:
    """One etcd watch; the client's watcher thread hands responses over through a queue."""

    def __init__(self, client: MultiEndpointEtcd3Client, prefix: str, start_revision: int,
                 convert: Converter) -> None:
        self._client = client
        self._convert = convert
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = threading.Event()
        # etcd confirms a watch made with an expired auth token and then cancels it, which the
        # client does not pass on: the watch would go silent. A read first is refused instead,
        # and EtcdStore authenticates again and repeats this call (`_converted`).
        client.get_response(prefix, count_only=True)
        _renew_watcher(client)
        try:
            self._watch_id = client.add_watch_prefix_callback(
                prefix, self._queue.put, start_revision=start_revision, progress_notify=True)
        except etcd_exc.RevisionCompactedError as exc:
            raise _compacted(exc, start_revision) from None
        except etcd_exc.WatchTimedOut:
            raise StoreUnavailableError("etcd did not confirm the watch in time") from None

    def next_batch(self, timeout: float | None = None) -> list[Change] | None:
        if self._closed.is_set():
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _CLOSED or self._closed.is_set():
            return None
        if isinstance(item, etcd_exc.RevisionCompactedError):
            self.close()
            raise _compacted(item, None)
        if isinstance(item, BaseException):
            self.close()
            raise self._convert(item)
        if item is None:
            self.close()
            raise StoreUnavailableError("etcd ended the watch stream")
        return [_change(event) for event in item.events]

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(_CLOSED)
        # The stream may already be gone with the client or the connection: nothing to undo.
        with contextlib.suppress(etcd_exc.Etcd3Exception, grpc.RpcError, ValueError):
            self._client.cancel_watch(self._watch_id)


def _renew_watcher(client: MultiEndpointEtcd3Client) -> None:
    """The client's watcher keeps the auth token it was made with; after EtcdStore
    authenticated again, a watch through it would be refused forever. Make a new one then."""
    watcher = client.watcher
    if getattr(watcher, "_metadata", None) is not client.metadata:
        client.watcher = client.get_watcher()
        watcher.close()


def _compacted(exc: etcd_exc.RevisionCompactedError, asked: int | None) -> CompactedError:
    where = f" (asked for {asked})" if asked is not None else ""
    return CompactedError(f"etcd compacted its history up to revision "
                          f"{exc.compacted_revision}{where}; reading the current state again")


def _change(event: Any) -> Change:
    is_delete = isinstance(event, etcd_events.DeleteEvent)
    return Change("delete" if is_delete else "put", event.key.decode("utf-8", "replace"),
                  b"" if is_delete else bytes(event.value), int(event.mod_revision))
