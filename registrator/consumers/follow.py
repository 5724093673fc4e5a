"""A registry copy kept in step with the store by a watch, not by polling: one read, then a
watch from the revision after it. After a broken stream (store restart, outage), with backoff
so an outage never becomes a busy loop, and when the history it needs was compacted away, the
prefix is read again and the difference reported as changes (a store back with less data, or
none, is then seen as it is)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import structlog

from registrator.consumers.registry import Registry
from registrator.errors import CompactedError, StoreError, StoreUnavailableError
from registrator.keys import KeySpace
from registrator.stores.base import Change, ChangeStream, Store

log = structlog.get_logger("registrator.consumers")

# notify(changes, first): `first` is the initial read, when `changes` lists every key.
Notify = Callable[[list[Change], bool], None]
# etcd sends an idle watch a progress notice every 10 minutes (its default): a watch that
# says nothing for much longer was cancelled without a word reaching us, so it is remade.
SILENT_WATCH = 25 * 60.0


class Follower:
    def __init__(self, store: Store, keys: KeySpace, *, backoff_min: float = 0.1,
                 backoff_max: float = 5.0, silent_watch: float = SILENT_WATCH) -> None:
        self.store = store
        self.keys = keys
        self.registry = Registry(keys)
        # Held while the registry changes; readers on other threads take it too.
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.watching = threading.Event()  # a watch is open now (for /healthz)
        self.problem: str | None = None  # why not, while it is not (for /healthz's text)
        # time.monotonic() since when no watch has been open (None while one is): how stale
        # a copy served from this registry is (`serve`, SPEC §11).
        self.unwatched_since: float | None = time.monotonic()
        self.revision = 0
        # A digest per key, not the value: enough to tell what changed across a compaction.
        self._digests: dict[str, bytes] = {}
        self._stream: ChangeStream | None = None
        self._backoff = (backoff_min, backoff_max)
        self._failing, self._delay = False, backoff_min  # run()'s, kept across its calls
        self._back_said = False  # "store answers again" logged for this outage
        self._silent_watch = silent_watch

    def stop(self) -> None:
        """From any thread: run() returns soon after."""
        self.stop_event.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    def run(self, notify: Notify) -> None:
        need_read, first = True, True
        self._failing, self._delay = False, self._backoff[0]
        while not self.stop_event.is_set():
            try:
                if need_read:
                    changes = self._read_all()
                    need_read = False
                    if self._failing and not self._back_said:
                        # Said once per outage: a store that answers reads while its watch
                        # keeps failing would say it at every retry.
                        self._back_said = True
                        log.info("store answers again; reading the registry again",
                                 revision=self.revision, changed=len(changes))
                    if first or changes:
                        notify(changes, first)
                    first = False
                self._follow(notify)
            except CompactedError as exc:
                log.warning("watch history compacted; reading the registry again", reason=str(exc))
                need_read = True
            except (StoreUnavailableError, StoreError) as exc:
                self._unwatched()
                self.problem = f"store unreachable: {exc}"[:300]
                # Resume by reading the prefix again, not by watching from our revision: a
                # store that came back empty (data wiped, restored from an older backup) is
                # below that revision, and etcd holds a watch on a future revision open
                # without a word, so the old copy would be served as current forever. The
                # read reports only what differs from the copy, as after a compaction.
                need_read = True
                if not self._failing:
                    self._back_said = False
                    log.warning("store unreachable; retrying with backoff", reason=str(exc))
                self._failing = True
                self.stop_event.wait(self._delay)
                self._delay = min(self._delay * 2, self._backoff[1])
        self._unwatched()

    def _unwatched(self) -> None:
        self.watching.clear()
        if self.unwatched_since is None:
            self.unwatched_since = time.monotonic()

    def _recovered(self) -> None:
        """A watch is open again: the next failure is a new one, said again and retried
        soon (a backoff left long from an outage at start made a failover wait too)."""
        if self._failing and not self._back_said:
            log.info("store answers again; watching", revision=self.revision)
        self._failing, self._delay, self.problem = False, self._backoff[0], None

    def _read_all(self) -> list[Change]:
        """Read the prefix; the changes since the last read (every key the first time)."""
        kvs, revision = self.store.snapshot(self.keys.root)
        now = {kv.key: kv.value for kv in kvs}
        digests = {k: _digest(v) for k, v in now.items()}
        changes = [Change("put", k, now[k], revision) for k, d in digests.items()
                   if self._digests.get(k) != d]
        changes += [Change("delete", k, b"", revision) for k in self._digests if k not in now]
        with self.lock:
            self._digests = digests
            self.registry.load(now.items())
            self.revision = revision
        # A whole read just done: the copy is current (not stale) even before the watch opens.
        self.unwatched_since = None
        return changes

    def _follow(self, notify: Notify) -> None:
        stream = self.store.watch(self.keys.root, self.revision + 1)
        self._stream = stream
        try:
            if self.stop_event.is_set():
                return
            self.watching.set()
            self.unwatched_since = None
            log.info("watching the registry", prefix=self.keys.prefix, revision=self.revision)
            self._recovered()
            heard = time.monotonic()
            while not self.stop_event.is_set():
                batch = stream.next_batch(1.0)
                if batch is not None:
                    heard = time.monotonic()
                elif time.monotonic() - heard > self._silent_watch:
                    log.warning("the watch has been silent for too long; making it again",
                                seconds=round(self._silent_watch))
                    return
                if batch:
                    self._apply(batch)
                    notify(batch, False)  # noqa: FBT003 - Notify is a plain callable
        finally:
            self._stream = None
            stream.close()

    def _apply(self, batch: list[Change]) -> None:
        with self.lock:
            for change in batch:
                if change.op == "put":
                    self._digests[change.key] = _digest(change.value)
                    self.registry.put(change.key, change.value)
                else:
                    self._digests.pop(change.key, None)
                    self.registry.delete(change.key)
                self.revision = max(self.revision, change.revision)


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).digest()
