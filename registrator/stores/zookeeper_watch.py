"""Reads of a whole subtree and watches on ZooKeeper for the read-only consumers (SPEC §8).
Like zookeeper.py, allowed kazoo.

ZooKeeper has no store revisions and no watch from a past point. A snapshot's "revision" is
the highest zxid that touched the subtree (a node's mzxid for its data, its pzxid for its
children), so any change under it moves the number. A watch is kazoo's TreeCache; it starts
from the state the consumer last saw (`Views`: the snapshot, then what the stream reported),
and the first thing it reports is the difference between that and what it finds; after a
reconnect TreeCache reads everything again, and only real differences are reported. A watch
from a revision nobody here remembers is CompactedError: the consumer reads again."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kazoo import exceptions as kz
from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.cache import TreeCache, TreeEvent

from registrator.errors import CompactedError, StoreUnavailableError
from registrator.stores.base import Change

if TYPE_CHECKING:
    from kazoo.client import KazooClient

Node = tuple[str, bytes, ZnodeStat]
_KEEP_VIEWS = 8
_CLOSED = object()


def base_of(prefix: str) -> str:
    """The znode under which every key starting with `prefix` lives."""
    if prefix.endswith("/"):
        return prefix.rstrip("/") or "/"
    return prefix.rsplit("/", 1)[0] or "/"


def walk(client: KazooClient, prefix: str, timeout: float) -> list[Node]:
    """Every znode under `prefix`'s base, level by level, each level's reads in flight at
    once (not one round trip per znode)."""
    level = [base_of(prefix)]
    out: list[Node] = []
    while level:
        pending = [(p, client.get_async(p), client.get_children_async(p)) for p in level]
        level = []
        for path, data_result, children_result in pending:
            try:
                data, stat = data_result.get(timeout=timeout)
                children = children_result.get(timeout=timeout)
            except kz.NoNodeError:
                continue  # gone while we read
            out.append((path, data or b"", stat))
            level += [f"{path.rstrip('/')}/{child}" for child in children]
    return out


def revision_of(stats: Iterable[ZnodeStat]) -> int:
    return max((max(s.mzxid, s.pzxid) for s in stats), default=0)


class Views:
    """What consumers of this store were last told, per prefix: a watch resumes from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[tuple[str, int], dict[str, bytes]] = {}

    def remember(self, prefix: str, revision: int, state: dict[str, bytes]) -> None:
        with self._lock:
            self._views[(prefix, revision)] = state
            while len(self._views) > _KEEP_VIEWS:
                del self._views[next(iter(self._views))]

    def forget(self, prefix: str, revision: int) -> None:
        with self._lock:
            self._views.pop((prefix, revision), None)

    def find(self, prefix: str, revision: int) -> dict[str, bytes] | None:
        with self._lock:
            state = self._views.get((prefix, revision))
            return dict(state) if state is not None else None


class TreeStream:
    """One TreeCache; its events come through a queue, and next_batch turns them into the
    changes that make the known state the current one."""

    def __init__(self, client: KazooClient, prefix: str, start_revision: int, views: Views,
                 timeout: float) -> None:
        known = views.find(prefix, start_revision - 1)
        if known is None:
            raise CompactedError(f"zookeeper keeps no history; revision {start_revision - 1} "
                                 "is not the last state read here: reading again")
        self._prefix = prefix
        self._views = views
        self._known = known
        self._revision = start_revision - 1
        self._initialized = False
        self._broken: str | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = threading.Event()
        if not client.connected:
            raise StoreUnavailableError("zookeeper connection lost")
        self._tree = TreeCache(client, base_of(prefix))
        self._tree.listen(self._on_event)
        self._tree.listen_fault(self._queue.put)
        self._timeout = timeout
        self._ready = threading.Event()
        self._tree.start()
        # Watching only once the whole subtree was read with watches set: a consumer that
        # says "watching" then misses nothing that comes after.
        if not self._ready.wait(timeout):
            self.close()
            raise StoreUnavailableError("zookeeper: the first read of the watched subtree "
                                        f"took over {timeout:g}s")

    def next_batch(self, timeout: float | None = None) -> list[Change] | None:
        if self._broken is not None:
            self.close()
            raise StoreUnavailableError(self._broken)
        if self._closed.is_set():
            return None
        items = self._take(timeout)
        if not items:
            return None
        changes: list[Change] = []
        for event in items:
            if event is _CLOSED or self._closed.is_set():
                return None
            problem = _broken_by(event)
            if problem is not None:
                if changes:  # report what came before; the next call raises
                    self._broken = problem
                    break
                self.close()
                raise StoreUnavailableError(problem)
            changes += self._handle(event)
        if changes:
            self._views.forget(self._prefix, self._revision)
            self._revision = max(self._revision, *(c.revision for c in changes))
            self._views.remember(self._prefix, self._revision, self._known)
        return changes

    def _take(self, timeout: float | None) -> list[Any]:
        """What arrived together (one batch); [] when nothing came within `timeout`."""
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _on_event(self, event: Any) -> None:
        """TreeCache's own thread, which alone changes the tree: the first full read is
        copied out here."""
        if event.event_type == TreeEvent.INITIALIZED:
            self._queue.put(_first_read(self._tree, self._prefix))
            self._ready.set()
        else:
            self._queue.put(event)

    def _handle(self, event: Any) -> list[Change]:
        if isinstance(event, tuple) and not isinstance(event, TreeEvent):
            if self._initialized:
                return []
            self._initialized = True
            current, revision = event
            return self._resync(current, revision)
        kind = event.event_type
        if not self._initialized or kind not in (
                TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED, TreeEvent.NODE_REMOVED):
            return []
        return self._node_changed(kind, event.event_data)

    def _node_changed(self, kind: int, data: Any) -> list[Change]:
        path = data.path
        if not path.startswith(self._prefix):
            return []
        if kind != TreeEvent.NODE_REMOVED and (data.data or data.stat.ephemeralOwner):
            value = data.data or b""
            if self._known.get(path) == value:
                return []
            self._known[path] = value
            return [Change("put", path, value, max(self._revision, data.stat.mzxid))]
        if self._known.pop(path, None) is None:
            return []
        return [Change("delete", path, b"", self._revision)]

    def _resync(self, current: dict[str, bytes], revision: int) -> list[Change]:
        """The difference between the state the consumer knows and the tree as first read."""
        revision = max(self._revision, revision)
        changes = [Change("put", k, v, revision) for k, v in current.items()
                   if self._known.get(k) != v]
        changes += [Change("delete", k, b"", revision) for k in self._known if k not in current]
        self._known = current
        return changes

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(_CLOSED)
        with contextlib.suppress(kz.KazooException):
            self._tree.close()


def _broken_by(event: Any) -> str | None:
    """Why the stream cannot go on, or None. A lost connection ends it: kazoo's TreeCache
    would quietly resume after a reconnect, but until then the consumer's copy is not
    current and must say so (`serve`'s stale answers, /healthz); the follower makes a new
    stream, which reports only what changed meanwhile."""
    if isinstance(event, BaseException):
        return f"zookeeper watch failed: {event!r}"
    if isinstance(event, TreeEvent) and event.event_type in (
            TreeEvent.CONNECTION_SUSPENDED, TreeEvent.CONNECTION_LOST):
        return "zookeeper connection lost"
    return None


def _first_read(tree: TreeCache, prefix: str) -> tuple[dict[str, bytes], int]:
    current: dict[str, bytes] = {}
    stats: list[ZnodeStat] = []
    pending = [tree._root]  # noqa: SLF001 - TreeCache has no public walk
    while pending:
        node = pending.pop()
        pending += list(node._children.values())  # noqa: SLF001
        found = node._data  # noqa: SLF001
        if found is None:
            continue
        stats.append(found.stat)
        if found.path.startswith(prefix) and (found.data or found.stat.ephemeralOwner):
            current[found.path] = found.data or b""
    return current, revision_of(stats)
