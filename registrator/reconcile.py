"""Level-triggered reconciliation: read what Docker runs, compute what the store should hold,
write the difference. One code path serves startup, events, resync and lease recovery:
`sync(ids)` for a few containers (events), `full()` against the store itself (the rest)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from registrator.desired import Policy, desired_services
from registrator.health import HealthMonitor
from registrator.layouts import Renderer, parse_entry
from registrator.metrics import Metrics
from registrator.model import LabelWarning, Service
from registrator.stores.base import KeyValue, Store

log = structlog.get_logger("registrator.reconcile")

Entries = dict[str, Service]  # primary key -> service
_INSPECT_WORKERS = 8
_UNREAD: Any = object()  # "not inspected yet", as opposed to None: "no such container"


class ContainerSource(Protocol):
    def running_ids(self) -> list[str]: ...
    def inspect(self, container_id: str) -> dict[str, Any] | None: ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Reconciler:
    def __init__(  # noqa: PLR0913 - the collaborators, each needed
        self, store: Store, docker: ContainerSource, policy: Policy, renderer: Renderer,
        host_record: Callable[[int], str], clock: Callable[[], str] = now_iso,
        health: HealthMonitor | None = None, metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.docker = docker
        self.policy = policy
        self.renderer = renderer
        self.host_record = host_record
        self.clock = clock
        self.health = health
        self.metrics = metrics or Metrics()
        self.metrics.services.set_function(lambda: len(self._owner))
        self.lease = 0
        self._by_container: dict[str, Entries] = {}
        self._owner: dict[str, str] = {}  # primary key -> container id
        self._registered_at: dict[str, str] = {}
        self._warned: dict[str, frozenset[LabelWarning]] = {}
        self._unreadable: dict[str, bytes] = {}

    @property
    def service_count(self) -> int:
        return len(self._owner)

    # -- events ---------------------------------------------------------------------------
    def sync(self, container_ids: Iterable[str]) -> None:
        """Make the store match these containers, diffing against what we last wrote."""
        wanted = {cid: self._desired(cid, self._owner.__contains__)
                  for cid in dict.fromkeys(container_ids)}
        puts: dict[str, str] = {}
        deletes: list[str] = []
        added = removed = 0
        for cid, entries in wanted.items():
            for key in [k for k in entries if self._owner.get(k, cid) != cid]:
                self._conflict(key, entries.pop(key), self._owner[key])
            old = self._by_container.get(cid, {})
            for key, service in entries.items():
                if old.get(key) != service:
                    puts.update(self.renderer.render(service, self._stamp(key)))
                    added += key not in old
            for key, service in old.items():
                if key not in entries:
                    deletes.extend(self.renderer.owned_keys(service))
                    removed += 1
        self.store.apply(list(puts.items()), deletes, self.lease)
        self.metrics.registrations.inc(added)
        self.metrics.deregistrations.inc(removed)
        for cid, entries in wanted.items():
            self._commit(cid, entries)

    # -- startup, resync, lease recovery ----------------------------------------------------
    def full(self) -> None:
        """Compare everything this host should have with everything the store holds."""
        stored = {kv.key: kv for kv in self.store.get_prefix(self.renderer.keys.root)}
        wanted, claimed = self._desired_all(stored.__contains__)
        puts = self._missing(wanted, stored)
        owned = self._owned(kv for kv in stored.values() if kv.key not in claimed)
        deletes = [k for key, (service, _) in owned.items() if key not in claimed
                   for k in self.renderer.owned_keys(service)]
        self.store.apply(list(puts.items()), deletes, self.lease)
        self.metrics.registrations.inc(sum(1 for k in claimed if k not in stored))
        self.metrics.deregistrations.inc(sum(1 for k in owned if k not in claimed))
        self.metrics.containers.set(len(wanted))
        if puts or deletes:
            log.info("reconciled", written=len(puts), deleted=len(deletes),
                     services=len(claimed))
        for cid in set(self._by_container) - set(wanted):
            self._commit(cid, {})
        for cid in set(self._warned) - set(wanted):
            del self._warned[cid]
        for cid, entries in wanted.items():
            self._commit(cid, entries)

    def _desired_all(self, registered: Callable[[str], bool],
                     ) -> tuple[dict[str, Entries], dict[str, str]]:
        """Entries per running container, and which container claims each key (two
        containers asking for one key: the first by id keeps it, the other is warned)."""
        wanted: dict[str, Entries] = {}
        claimed: dict[str, str] = {}
        ids = sorted(self.docker.running_ids())
        # Inspects are I/O-bound round trips to the engine: a few in flight at once make a
        # cold start with hundreds of containers several times faster.
        with ThreadPoolExecutor(_INSPECT_WORKERS, thread_name_prefix="inspect") as pool:
            infos = dict(zip(ids, pool.map(self.docker.inspect, ids), strict=True))
        for cid in ids:
            entries = self._desired(cid, registered, infos[cid])
            for key in [k for k in entries if k in claimed]:
                self._conflict(key, entries.pop(key), claimed[key])
            claimed.update(dict.fromkeys(entries, cid))
            wanted[cid] = entries
        if self.health is not None:
            self.health.retain(set(wanted))
        return wanted, claimed

    def _missing(self, wanted: dict[str, Entries], stored: dict[str, KeyValue]) -> dict[str, str]:
        """Keys (ours and the host record) that are absent, differ, or sit on another lease."""
        puts: dict[str, str] = {}
        for entries in wanted.values():
            for key, service in entries.items():
                # Keep the first registration time across resyncs and daemon restarts.
                stamp = (self._registered_at.get(key) or _stamp_of(stored.get(key))
                         or self.clock())
                self._registered_at[key] = stamp
                rendered = self.renderer.render(service, stamp)
                puts.update({k: v for k, v in rendered.items()
                             if not _same(stored.get(k), v, self.lease)})
        host_key = self.renderer.keys.host(self.policy.hostname)
        record = self.host_record(self.lease)
        if not _same(stored.get(host_key), record, self.lease):
            puts[host_key] = record
        return puts

    # -- helpers ----------------------------------------------------------------------------
    def _desired(self, cid: str, registered: Callable[[str], bool],
                 info: dict[str, Any] | None = _UNREAD) -> Entries:
        """What the container should have in the store now, health checks applied."""
        if info is _UNREAD:
            info = self.docker.inspect(cid)
        if info is None:
            self._warned.pop(cid, None)
            if self.health is not None:
                self.health.gate(cid, {}, registered)
            return {}
        result = desired_services(info, self.policy)
        warnings = frozenset(result.warnings)
        if warnings != self._warned.get(cid, frozenset()):
            for w in sorted(warnings - self._warned.get(cid, frozenset()),
                            key=lambda w: (w.label, w.message)):
                log.warning("bad label", container=w.container, label=w.label,
                            problem=w.message)
                self.metrics.label_warnings.inc()
        self._warned[cid] = warnings
        entries = {self.renderer.primary_key(s): s for s in result.services}
        return entries if self.health is None else self.health.gate(cid, entries, registered)

    def _owned(self, stored: Iterable[KeyValue]) -> dict[str, tuple[Service, str]]:
        """This host's primary entries, parsed; unreadable values are reported once each."""
        owned = {}
        for kv in stored:
            if self.renderer.keys.parse_service(kv.key) is None:
                continue
            try:
                service, registered_at = parse_entry(kv.value)
            except ValueError as exc:
                if self._unreadable.get(kv.key) != kv.value:
                    log.warning("unreadable store entry left alone", key=kv.key[:300],
                                problem=str(exc))
                    self._unreadable[kv.key] = kv.value
                continue
            if service.host == self.policy.hostname:
                owned[kv.key] = (service, registered_at)
        return owned

    def _stamp(self, key: str) -> str:
        return self._registered_at.get(key) or self._registered_at.setdefault(key, self.clock())

    def _conflict(self, key: str, service: Service, owner: str) -> None:
        log.warning("duplicate service key; first container keeps it", key=key,
                    container=service.container_name.lstrip("/"), owner=owner[:12])

    def _commit(self, cid: str, entries: Entries) -> None:
        for key in self._by_container.pop(cid, {}):
            if key not in entries:
                self._owner.pop(key, None)
                self._registered_at.pop(key, None)
        if entries:
            self._by_container[cid] = entries
            self._owner.update(dict.fromkeys(entries, cid))


def _stamp_of(current: KeyValue | None) -> str:
    """registered_at of a stored entry we are about to keep, if it is readable."""
    if current is None:
        return ""
    try:
        return parse_entry(current.value)[1]
    except ValueError:
        return ""


def _same(current: KeyValue | None, value: str, lease: int) -> bool:
    return current is not None and current.lease == lease and current.value == value.encode()
