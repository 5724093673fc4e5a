"""Level-triggered reconciliation: read what Docker runs, compute what the store should hold,
write the difference. One code path serves startup, events, resync and lease recovery:
`sync(ids)` for a few containers (events), `full()` against the store itself (the rest).

Two containers may ask for one key (a shared explicit id: blue/green). One rule, the same on
both paths, picks the holder: the container that holds it keeps it; otherwise the one the
store names, otherwise the lowest container id. The others wait, and the moment the holder
lets go, a waiter is looked at in the same batch and takes over."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import structlog

from registrator.desired import Policy, desired_services
from registrator.drain import Drains
from registrator.errors import TakenOverError
from registrator.health import HealthMonitor
from registrator.inspector import ContainerSource, Info, Inspector
from registrator.layouts import Renderer, host_port, parse_entry
from registrator.metrics import Metrics
from registrator.model import LabelWarning, Service
from registrator.stores.base import KeyValue, Store

log = structlog.get_logger("registrator.reconcile")

Entries = dict[str, Service]  # primary key -> service


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Reconciler:
    def __init__(  # noqa: PLR0913 - the collaborators, each needed
        self, store: Store, docker: ContainerSource | Inspector, policy: Policy,
        renderer: Renderer, host_record: Callable[[int], str],
        clock: Callable[[], str] = now_iso, health: HealthMonitor | None = None,
        metrics: Metrics | None = None, drains: Drains | None = None,
    ) -> None:
        self.store = store
        self.inspector = (docker if isinstance(docker, Inspector)
                          else Inspector(docker, later=lambda _cid: None, patience=3600))
        self.policy = policy
        self.renderer = renderer
        self.host_record = host_record
        self.clock = clock
        self.health = health
        self.drains = drains
        self.metrics = metrics or Metrics()
        self.metrics.services.set_function(lambda: len(self._owner))
        self.lease = 0
        self.adopt: int | None = None  # an earlier run's lease being taken over
        self._by_container: dict[str, Entries] = {}
        self._owner: dict[str, str] = {}  # primary key -> container id
        self._waiting: dict[str, set[str]] = {}  # primary key -> containers that want it
        self._registered_at: dict[str, str] = {}
        self._warned: dict[str, frozenset[LabelWarning]] = {}
        self._unreadable: dict[str, bytes] = {}
        self._refused: dict[str, str] = {}  # primary key -> value the store refused

    @property
    def service_count(self) -> int:
        return len(self._owner)

    # -- events ---------------------------------------------------------------------------
    def sync(self, container_ids: Iterable[str]) -> None:
        """Make the store match these containers, diffing against what we last wrote."""
        wanted = self._want(container_ids, self._owner.__contains__)
        # Keys this batch lets go of: whoever waits for them is looked at now, not at the
        # next resync.
        released = {k for cid, entries in wanted.items()
                    for k in self._by_container.get(cid, {}) if k not in entries}
        waiters = {c for k in released for c in self._waiting.get(k, ()) if c not in wanted}
        if waiters:
            wanted.update(self._want(sorted(waiters), self._owner.__contains__))
        held = {k: c for k, c in self._owner.items() if c not in wanted}
        final = self._arbitrate(wanted, held, self._owner)
        puts, origin, deletes, added, removed = self._diff(final)
        refused = self.store.apply(list(puts.items()), deletes, self.lease)
        self._drop_refused(refused, origin, final)
        self._announce([s for s in added if self.renderer.primary_key(s) not in refused],
                       removed)
        for cid, entries in final.items():
            self._commit(cid, entries)

    def _diff(self, final: dict[str, Entries]) -> tuple[
            dict[str, str], dict[str, tuple[str, str]], list[str], list[Service], list[Service]]:
        """Against what we last wrote: keys to put (and whose they are), keys to delete, and
        the services that appear and go."""
        puts: dict[str, str] = {}
        origin: dict[str, tuple[str, str]] = {}
        deletes: list[str] = []
        added: list[Service] = []
        removed: list[Service] = []
        won = {k for entries in final.values() for k in entries}
        for cid, entries in final.items():
            old = self._by_container.get(cid, {})
            for key, service in entries.items():
                if key not in old and self._owner.get(key, cid) != cid:
                    self._registered_at.pop(key, None)  # another container's entry before
                if old.get(key) != service:
                    rendered = self.renderer.render(service, self._stamp(key))
                    puts.update(rendered)
                    origin.update(dict.fromkeys(rendered, (key, cid)))
                    added += [service] if key not in old else []
            for key, service in old.items():
                if key not in entries:
                    deletes.extend(self.renderer.owned_keys(service))
                    removed += [service] if key not in won else []
        return puts, origin, deletes, added, removed

    # -- startup, resync, lease recovery ----------------------------------------------------
    def full(self) -> None:
        """Compare everything this host should have with what the store holds for it. Reads
        O(this host's entries): its index range, then its own keys by name, never the whole
        registry (per-host cost must not grow with the fleet)."""
        keys = self.renderer.keys
        index = self.store.get_prefix(keys.index_root(self.policy.hostname))
        listed = {kv.value.decode("utf-8", "replace") for kv in index}
        listed = {k for k in listed if keys.parse_service(k) is not None}
        running = sorted(self.inspector.running_ids())
        infos, deferred = self.inspector.inspect(running)
        registered = listed | set(self._owner)
        wanted = {cid: self._desired(cid, registered.__contains__, infos[cid])
                  for cid in running if cid in infos}
        # What the index names, and the other keys of those entries. An entry the index does
        # not name (a fresh start, an index key deleted by hand) is simply written.
        to_read = {keys.host(self.policy.hostname), *listed, *(kv.key for kv in index)}
        for entries in wanted.values():
            for key, service in entries.items():
                if key in listed:
                    to_read.update(self.renderer.owned_keys(service))
        stored = {kv.key: kv for kv in self.store.get_many(sorted(to_read))}
        self._check_host_record(stored.get(keys.host(self.policy.hostname)))
        owned, unreadable = self._owned(stored.values())
        # A container whose inspect is slow keeps what it has until its answer comes.
        held = {k: c for k, c in self._owner.items() if c in deferred}
        held.update({k: s.container_id for k, (s, _) in owned.items()
                     if s.container_id in deferred})
        previous = {**{k: s.container_id for k, (s, _) in owned.items()}, **self._owner}
        final = self._arbitrate(wanted, held, previous)
        for key, cids in list(self._waiting.items()):
            cids.intersection_update(running)
            if not cids:
                del self._waiting[key]
        puts, origin, kept = self._missing(final, stored)
        claimed = {k for entries in final.values() for k in entries} | set(held)
        # Unreadable entries on our own lease are ours (our index named them): removed.
        ours = {k for k in unreadable if stored[k].lease in (self.lease, self.adopt or -1)}
        self._report_unreadable({k: v for k, v in unreadable.items() if k not in ours},
                                claimed)
        stale = {key: service for key, (service, _) in owned.items() if key not in claimed}
        deletes = [k for service in stale.values() for k in self.renderer.owned_keys(service)]
        deletes += [k for k in ours if k not in claimed]
        # Index keys of no entry we keep (its entry gone, unreadable, another host's now).
        deletes += [kv.key for kv in index if kv.key not in kept
                    and kv.value.decode("utf-8", "replace") not in held]
        refused = self.store.apply(list(puts.items()), deletes, self.lease)
        self._drop_refused(refused, origin, final)
        self._announce([s for entries in final.values() for k, s in entries.items()
                        if k not in stored and k not in refused], list(stale.values()))
        self.metrics.containers.set(len(running))
        if puts or deletes:
            log.info("reconciled", written=len(puts), deleted=len(deletes),
                     services=len(claimed))
        for cid in set(self._by_container) - set(final) - deferred:
            self._commit(cid, {})
        for cid in set(self._warned) - set(running):
            del self._warned[cid]
        for cid, entries in final.items():
            self._commit(cid, entries)
        self._retain(set(final) | deferred, set(running))

    def _retain(self, looked_at: set[str], running: set[str]) -> None:
        """After a full look: forget health and drain state of containers that are gone."""
        if self.health is not None:
            self.health.retain(looked_at)
        if self.drains is not None:
            self.drains.retain(running)

    def _check_host_record(self, record: KeyValue | None) -> None:
        """Our host record on a lease that is neither ours nor the one we take over: another
        daemon took this host name over. Fighting it would delete its entries."""
        if record is not None and record.lease not in (0, self.lease, self.adopt):
            raise TakenOverError(f"the host record {record.key} is now on lease "
                                 f"{record.lease:x}, not ours ({self.lease:x})")

    def _missing(self, final: dict[str, Entries], stored: Mapping[str, KeyValue],
                 ) -> tuple[dict[str, str], dict[str, tuple[str, str]], set[str]]:
        """Keys (ours and the host record) that are absent, differ, or sit on another lease,
        which (primary key, container) each one belongs to, and every key the entries own."""
        puts: dict[str, str] = {}
        origin: dict[str, tuple[str, str]] = {}
        owned: set[str] = set()
        for cid, entries in final.items():
            for key, service in entries.items():
                # Keep the first registration time across resyncs and daemon restarts.
                stamp = (self._registered_at.get(key) or _stamp_of(stored.get(key))
                         or self.clock())
                self._registered_at[key] = stamp
                rendered = self.renderer.render(service, stamp)
                owned.update(rendered)
                changed = {k: v for k, v in rendered.items()
                           if not _same(stored.get(k), v, self.lease)}
                puts.update(changed)
                origin.update(dict.fromkeys(changed, (key, cid)))
        host_key = self.renderer.keys.host(self.policy.hostname)
        record = self.host_record(self.lease)
        if not _same(stored.get(host_key), record, self.lease):
            puts[host_key] = record
        return puts, origin, owned

    # -- who holds a key ----------------------------------------------------------------------
    def _arbitrate(self, wanted: dict[str, Entries], held: Mapping[str, str],
                   previous: Mapping[str, str]) -> dict[str, Entries]:
        """The entries each container of `wanted` gets. `held`: keys kept by a container
        outside this batch; `previous`: who had each key before."""
        claims: dict[str, list[str]] = {}
        for cid in sorted(wanted):
            for key in wanted[cid]:
                claims.setdefault(key, []).append(cid)
        final: dict[str, Entries] = {cid: {} for cid in wanted}
        lost: list[tuple[str, str, str]] = []
        for key, cids in claims.items():
            holder = held.get(key)
            if holder is None:
                holder = previous.get(key, "")
                holder = holder if holder in cids else cids[0]
            for cid in cids:
                if cid == holder:
                    final[cid][key] = wanted[cid][key]
                else:
                    lost.append((key, cid, holder))
        self._note_waiting(set(wanted), lost, wanted)
        return final

    def _note_waiting(self, looked_at: set[str], lost: list[tuple[str, str, str]],
                      wanted: dict[str, Entries]) -> None:
        before = {(k, c) for k, cids in self._waiting.items() for c in cids if c in looked_at}
        for cids in self._waiting.values():
            cids.difference_update(looked_at)
        for key, cid, holder in lost:
            self._waiting.setdefault(key, set()).add(cid)
            if (key, cid) not in before:
                log.warning("service key held by another container; this one takes over "
                            "when that one lets go", key=key,
                            container=wanted[cid][key].container_name.lstrip("/"),
                            holder=holder[:12])
        for key in [k for k, cids in self._waiting.items() if not cids]:
            del self._waiting[key]

    # -- helpers ----------------------------------------------------------------------------
    def _want(self, ids: Iterable[str], registered: Callable[[str], bool]) -> dict[str, Entries]:
        infos, _deferred = self.inspector.inspect(ids)
        return {cid: self._desired(cid, registered, info) for cid, info in infos.items()}

    def _desired(self, cid: str, registered: Callable[[str], bool], info: Info) -> Entries:
        """What the container should have in the store now, drain and health applied."""
        result = desired_services(info, self.policy) if info is not None else None
        # A container with nothing to register has nothing to drain (and nothing to log).
        if self.drains is not None and self.drains.holds(
                cid, info, result is not None and result.drain and bool(result.services)):
            result = None  # draining: as if it were gone, so its health checks stop too
        if result is None:
            self._warned.pop(cid, None)
            if self.health is not None:
                self.health.gate(cid, {}, registered)
            return {}
        warnings = frozenset(result.warnings)
        if warnings != self._warned.get(cid, frozenset()):
            for w in sorted(warnings - self._warned.get(cid, frozenset()),
                            key=lambda w: (w.label, w.message)):
                if w.label == "-":
                    log.warning("cannot register", container=w.container, problem=w.message)
                else:
                    log.warning("bad label", container=w.container, label=w.label,
                                problem=w.message)
                self.metrics.label_warnings.inc()
        self._warned[cid] = warnings
        entries = {self.renderer.primary_key(s): s for s in result.services}
        return entries if self.health is None else self.health.gate(cid, entries, registered)

    def _drop_refused(self, refused: list[str], origin: Mapping[str, tuple[str, str]],
                      final: dict[str, Entries]) -> None:
        """Entries the store would not take (bigger than it accepts in one request): said
        once per entry and value, left out, their other keys removed; the rest goes on."""
        siblings: list[str] = []
        for key in dict.fromkeys(refused):
            primary, cid = origin.get(key, ("", ""))
            service = final.get(cid, {}).pop(primary, None)
            if service is None:
                continue
            value = self.renderer.render(service, "")[primary]
            siblings += [k for k in self.renderer.owned_keys(service) if k not in refused]
            if self._refused.get(primary) != value:
                self._refused[primary] = value
                log.warning("store refused the entry (larger than it accepts in one request); "
                            "service skipped", container=service.container_name.lstrip("/"),
                            key=primary[:300], bytes=len(value.encode()))
        if siblings:
            self.store.apply([], siblings, self.lease)

    def _announce(self, added: list[Service], removed: list[Service]) -> None:
        for what, services, counter in (("added", added, self.metrics.registrations),
                                        ("removed", removed, self.metrics.deregistrations)):
            counter.inc(len(services))
            for s in services:
                log.info(what, name=s.name, id=s.id, address=host_port(s.address, s.port),
                         protocol=s.protocol, container=s.container_name.lstrip("/"))

    def _owned(self, stored: Iterable[KeyValue],
               ) -> tuple[dict[str, tuple[Service, str]], dict[str, tuple[bytes, str]]]:
        """This host's primary entries, parsed, and the unreadable ones with the problem."""
        owned = {}
        unreadable = {}
        for kv in stored:
            if self.renderer.keys.parse_service(kv.key) is None:
                continue
            try:
                service, registered_at = parse_entry(kv.value)
            except ValueError as exc:
                unreadable[kv.key] = (kv.value, str(exc))
                continue
            if service.host == self.policy.hostname:
                owned[kv.key] = (service, registered_at)
        return owned, unreadable

    def _report_unreadable(self, unreadable: dict[str, tuple[bytes, str]],
                           claimed: set[str]) -> None:
        """Once per value; ours (about to be rewritten) need no word."""
        for key, (value, problem) in unreadable.items():
            if key not in claimed and self._unreadable.get(key) != value:
                log.warning("unreadable store entry left alone", key=key[:300], problem=problem)
                self._unreadable[key] = value

    def _stamp(self, key: str) -> str:
        return self._registered_at.get(key) or self._registered_at.setdefault(key, self.clock())

    def _commit(self, cid: str, entries: Entries) -> None:
        for key in self._by_container.pop(cid, {}):
            if key not in entries and self._owner.get(key) == cid:
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

