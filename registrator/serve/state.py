"""The in-memory copy `serve` answers from (SPEC §11): kept by the same watch as `render`
(Follower + Registry), published as one immutable Snapshot per change. Readers (HTTP, DNS)
take `current()` and never lock; a new snapshot replaces the old one in a single assignment,
and `subscribe` callbacks hear of it (held HTTP requests, server-sent events, DNS answers
built once per change)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import structlog

from registrator.consumers.follow import Follower
from registrator.consumers.registry import Record, Registry
from registrator.keys import KeySpace
from registrator.stores.base import Change, Store

log = structlog.get_logger("registrator.serve")

_EMPTY: Mapping[str, int] = MappingProxyType({})
_NO_VALUES: Mapping[str, bytes] = MappingProxyType({})
# How long the watch may take to come back after the store does: serve's answers are current
# again within about this much of the store's return (SPEC §11), at the cost of one connect
# attempt per this interval while the store is down.
BACKOFF_MAX = 0.5


@dataclass(frozen=True)
class Snapshot:
    """One state of the copy. Never changed once published (records are shared, read-only)."""

    revision: int  # the store revision of the copy (raised by one where ZooKeeper gives none)
    services: Mapping[str, Sequence[Record]]  # name -> SPEC §4 entries, sorted by host then id
    hosts: Sequence[Record]  # host records sorted by hostname
    # The revision at which each part last changed: a blocking read is answered when ITS
    # answer changed, not at every change anywhere (SPEC §11, as Consul's per-query index).
    service_index: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    services_index: int = 0  # any service entry
    hosts_index: int = 0
    config_index: int = 0
    # <prefix>/config/... store key -> raw value (SPEC §9); served only with --show-config.
    config: Mapping[str, bytes] = field(default_factory=lambda: _NO_VALUES)
    loaded: bool = False  # False until the store was read once

    def index_of(self, name: str) -> int:
        """The revision at which service `name` last changed (a name never seen: the last
        change of any service, so a held read for it still ends when it appears)."""
        return self.service_index.get(name, self.services_index)


EMPTY = Snapshot(revision=0, services=MappingProxyType({}), hosts=())


class ServeState:
    """Follows the prefix on a thread of its own; `current()` is the latest snapshot."""

    def __init__(self, store: Store, keys: KeySpace, *, backoff_max: float = BACKOFF_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self.follower = Follower(store, keys, backoff_max=backoff_max)
        self.config_root = keys.prefix + "/config/"
        self._clock = clock
        self._snapshot = EMPTY
        self._subscribers: list[Callable[[Snapshot], None]] = []
        self._config: dict[str, bytes] = {}
        self._by_name: dict[str, dict[str, Record]] = {}  # name -> store key -> entry
        # The latest snapshot's mappings as plain dicts, copied (fast) for the next one.
        self._plain_services: dict[str, Sequence[Record]] = {}
        self._plain_index: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def current(self) -> Snapshot:
        return self._snapshot

    def subscribe(self, callback: Callable[[Snapshot], None]) -> None:
        """`callback(snapshot)` after every new snapshot, on the watch's thread: keep it short
        (hand over to your own loop or thread)."""
        self._subscribers.append(callback)

    @property
    def stale_for(self) -> float | None:
        """Seconds since the copy was last known current; None while the watch is open."""
        since = self.follower.unwatched_since
        return None if since is None else max(self._clock() - since, 0.0)

    @property
    def problem(self) -> str | None:
        """Why the watch is not open (the store's own words), None while it is."""
        return self.follower.problem

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="registry-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.follower.stop()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.follower.run(self._changed)
            except Exception:  # a bug, not the store (handled inside): keep serving
                log.exception("the registry watch ended unexpectedly; restarting it")
                self._stopping.wait(1.0)
            else:
                return

    def _changed(self, changes: list[Change], first: bool) -> None:
        old = self._snapshot
        hosts = config = first
        if first:
            self._config.clear()
            self._by_name.clear()
        for change in changes:
            if change.key.startswith(self.keys.hosts_root):
                hosts = True
            elif change.key.startswith(self.config_root):
                config = True
                if change.op == "put":
                    self._config[change.key] = change.value
                else:
                    self._config.pop(change.key, None)
        with self.follower.lock:
            registry = self.follower.registry
            touched = self._take_in(registry, changes)
            host_records = registry.hosts() if hosts else None
            # ZooKeeper reports a delete at the revision already seen: every new snapshot
            # still gets a higher number, or a held read would never see the delete.
            revision = max(self.follower.revision, old.revision + 1)
        self._snapshot = self._next(old, revision, host_records, touched,
                                    config=config, first=first)
        for callback in list(self._subscribers):
            try:
                callback(self._snapshot)
            except Exception:  # one broken listener must not stop the others or the watch
                log.exception("a snapshot listener failed")

    def _take_in(self, registry: Registry, changes: list[Change]) -> set[str]:
        """Keep the records per name in step with the registry (which the follower already
        changed); returns the names the changes touched."""
        touched: set[str] = set()
        for change in changes:
            where = self.keys.parse_service(change.key)
            if where is None:
                continue
            name = where[0]
            touched.add(name)
            record = registry.get(change.key)  # the key's final state in this batch
            bucket = self._by_name.setdefault(name, {})
            if record is None:
                bucket.pop(change.key, None)
            else:
                bucket[change.key] = record
            if not bucket:
                del self._by_name[name]
        return touched

    def _services(self, touched: set[str], first: bool) -> dict[str, Sequence[Record]]:
        """name -> entries; only the names a change touched are sorted again, so a change
        costs O(that service) plus a copy of one dict, not O(the registry) (it is on the way
        to every answer). The copy is of our own plain dict: copying through the snapshot's
        read-only proxy is ~30 times slower."""
        if first:
            return {name: _by_host(self._by_name[name]) for name in sorted(self._by_name)}
        services = self._plain_services.copy()
        added = False
        for name in touched:
            bucket = self._by_name.get(name)
            if bucket is None:
                services.pop(name, None)
            else:
                added = added or name not in services
                services[name] = _by_host(bucket)
        return dict(sorted(services.items())) if added else services

    def _next(self, old: Snapshot, revision: int,  # noqa: PLR0913 - the parts of one change
              host_records: list[Record] | None, touched: set[str], *, config: bool,
              first: bool) -> Snapshot:
        if first or touched:
            self._plain_services = self._services(touched, first)
        services = self._plain_services
        if first:
            index = dict.fromkeys(services, revision)
        else:
            # Only names that still exist keep an index of their own (bounded by what is
            # registered); a vanished name falls back to services_index, which is higher.
            index = self._plain_index.copy()
            for name in touched:
                if name in services:
                    index[name] = revision
                else:
                    index.pop(name, None)
        self._plain_index = index
        return Snapshot(
            revision=revision,
            services=MappingProxyType(services) if first or touched else old.services,
            hosts=old.hosts if host_records is None else tuple(host_records),
            service_index=MappingProxyType(index),
            services_index=revision if (first or touched) else old.services_index,
            hosts_index=revision if host_records is not None else old.hosts_index,
            config_index=revision if config else old.config_index,
            config=MappingProxyType(dict(self._config)) if config else old.config,
            loaded=True,
        )


def _by_host(bucket: dict[str, Record]) -> tuple[Record, ...]:
    return tuple(sorted(bucket.values(), key=lambda e: (e["host"], e["id"])))
