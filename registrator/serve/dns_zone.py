"""What serve's DNS knows (SPEC §11): the names under --domain, built from one registry
snapshot, and the records each (name, type) question gets. Pure: no sockets, no wire format.

Layout, relative to DOMAIN:
  NAME.service            A/AAAA of every instance; SRV (1 1 port <id-hash>.addr.DOMAIN)
  _NAME._tcp|_udp.service the same, instances of that protocol only (RFC 2782)
  TAG.NAME.service        the same, instances carrying that tag
  HOST.node               A/AAAA of the host record's address
  <id-hash>.addr          A/AAAA of one instance (the SRV targets)
Names, tags and hostnames that are not DNS labels (in any letter case) get no record;
an address that is not an IP literal gets none either (one warning per change)."""

from __future__ import annotations

import functools
import hashlib
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import structlog

from registrator.layouts import DNS_LABEL

log = structlog.get_logger("registrator.serve.dns")

Record = Mapping[str, Any]
# An address in its packed form (4 or 16 bytes): what the wire carries, cheap to hash.
IP = bytes
# Answer kinds a question can get; the wire layer turns them into messages.
NOERROR, NXDOMAIN = 0, 3
A, AAAA, SRV, SOA = 1, 28, 33, 6
PROTOCOLS = {"_tcp": "tcp", "_udp": "udp"}


class SnapshotLike(Protocol):
    """The part of serve's registry snapshot DNS reads (serve/state.py's Snapshot)."""

    @property
    def revision(self) -> int: ...
    @property
    def services(self) -> Mapping[str, Sequence[Record]]: ...
    @property
    def hosts(self) -> Sequence[Record]: ...


def id_hash(service_id: str) -> str:
    """The SRV target label of one instance: the skydns layout's leaf, so both agree."""
    return hashlib.sha256(service_id.encode()).hexdigest()[:16]


class Target(NamedTuple):
    """One instance as DNS sees it (a tuple: thousands are built per snapshot)."""

    label: str  # id_hash(id)
    ip: IP
    port: int
    protocol: str
    tags: frozenset[str]


@dataclass(frozen=True, slots=True)
class Found:
    """What one question gets. `srv` lists the targets of an SRV answer (their A/AAAA go in
    the additional section); `ips` the addresses of an A/AAAA answer."""

    rcode: int
    ips: tuple[IP, ...] = ()
    srv: tuple[Target, ...] = ()
    soa_answer: bool = False  # the apex's SOA question
    # Unchanged across snapshots while the service's entries are: the wire layer may keep
    # its answer in `cache` (None: build per snapshot).
    cache: dict[tuple[bytes, int], bytes] | None = None

    @property
    def negative(self) -> bool:
        """NXDOMAIN or NODATA: the SOA goes in the authority section (RFC 2308)."""
        return not (self.ips or self.srv or self.soa_answer)


def _ip(address: object) -> IP | None:
    """The packed address of an IP literal, None for anything else (a name, a scoped IPv6
    address): the C parser, as ipaddress costs ~30 us an address."""
    text = str(address)
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=4096)
def _tag_set(tags: tuple[str, ...]) -> frozenset[str]:
    """The tags that are DNS labels. Shared: thousands of instances carry the same few tag
    lists, and a set each was a third of a 20,000-entry zone's memory."""
    return frozenset(t.lower() for t in tags if DNS_LABEL.match(t.lower()))


def ip_text(ip: IP) -> str:
    return socket.inet_ntop(socket.AF_INET if len(ip) == 4 else socket.AF_INET6, ip)


def of_type(ips: Iterable[IP], qtype: int) -> tuple[IP, ...]:
    """The addresses an A (4 bytes) or AAAA (16 bytes) question asks for, each once."""
    size = 4 if qtype == A else 16
    return tuple(dict.fromkeys(ip for ip in ips if len(ip) == size))


class ServiceZone:
    """One service name's instances. Kept from one snapshot to the next while its entries
    are unchanged, and the wire answers cached in it with it."""

    __slots__ = ("cache", "entries", "protocols", "tags", "targets")

    def __init__(self, name: str, entries: Sequence[Record]) -> None:
        self.entries = entries
        self.cache: dict[tuple[bytes, int], bytes] = {}
        targets = []
        for entry in entries:
            ip = _ip(entry.get("address"))
            port = entry.get("port")
            if ip is None or not isinstance(port, int) or not 0 < port < 65536:
                log.warning("no DNS record for an entry: address is not an IP or port is "
                            "out of range", service=name[:64], id=str(entry.get("id"))[:64])
                continue
            tags = _tag_set(tuple(t for t in entry.get("tags") or () if isinstance(t, str)))
            targets.append(Target(id_hash(str(entry.get("id"))), ip, port,
                                  str(entry.get("protocol", "tcp")), tags))
        self.targets = tuple(targets)
        self.protocols = frozenset(t.protocol for t in self.targets)
        self.tags = frozenset().union(*(t.tags for t in self.targets))

    def select(self, protocol: str | None = None, tag: str | None = None) -> tuple[Target, ...]:
        return tuple(t for t in self.targets
                     if (protocol is None or t.protocol == protocol)
                     and (tag is None or tag in t.tags))


@dataclass
class Zone:
    """Every name of one snapshot. Build with Zone.build (reuses unchanged ServiceZones)."""

    revision: int
    services: dict[str, ServiceZone] = field(default_factory=dict)
    addrs: dict[str, tuple[IP, ...]] = field(default_factory=dict)
    nodes: dict[str, tuple[IP, ...]] = field(default_factory=dict)
    node_parents: frozenset[str] = frozenset()  # empty non-terminals of dotted hostnames
    loaded: bool = True  # False until the store was read once (serve's Snapshot.loaded)

    @classmethod
    def build(cls, snapshot: SnapshotLike, previous: Zone | None = None) -> Zone:
        old = previous.services if previous is not None else {}
        zone = cls(snapshot.revision, loaded=bool(getattr(snapshot, "loaded", True)))
        services = zone.services
        # DNS names are case-insensitive (RFC 4343) and questions are looked up lowercased:
        # "MyApp" is served as myapp (names differing in case only, as one).
        by_dns_name: dict[str, Sequence[Record]] = {}
        for name, entries in snapshot.services.items():
            lower = name.lower()
            had = by_dns_name.get(lower)
            # The snapshot's own sequence when alone (so `is` finds it unchanged).
            by_dns_name[lower] = entries if had is None else [*had, *entries]
        for name, entries in by_dns_name.items():
            kept = old.get(name)  # only a DNS label was kept: no need to match it again
            if kept is not None and (kept.entries is entries or kept.entries == entries):
                services[name] = kept
            elif kept is not None or DNS_LABEL.match(name):
                services[name] = ServiceZone(name, entries)
        zone.addrs = _addrs(old, zone.services, previous.addrs if previous else {})
        nodes: dict[str, list[IP]] = {}
        for host in snapshot.hosts:
            hostname, ip = str(host.get("hostname", "")).lower(), _ip(host.get("address"))
            if ip is not None and all(DNS_LABEL.match(p) for p in hostname.split(".")):
                nodes.setdefault(hostname, []).append(ip)
        zone.nodes = {name: tuple(ips) for name, ips in nodes.items()}
        zone.node_parents = frozenset(
            ".".join(parts[i:]) for parts in (n.split(".") for n in zone.nodes)
            for i in range(1, len(parts)))
        return zone

    def find(self, labels: Sequence[str], qtype: int) -> Found:
        """The answer to `qtype` at `labels` (relative to DOMAIN, lowercase, leftmost first)."""
        if not labels:
            return Found(NOERROR, soa_answer=qtype == SOA)
        kind, rest = labels[-1], labels[:-1]
        if kind == "service":
            return self._service(rest, qtype)
        if kind == "addr" and len(rest) <= 1:
            # addr.DOMAIN itself: an empty non-terminal (NODATA, not NXDOMAIN: RFC 8020).
            return _addresses(self.addrs.get(rest[0]), qtype) if rest else Found(NOERROR)
        if kind == "node":
            hostname = ".".join(rest)
            if not rest or hostname in self.node_parents:
                return Found(NOERROR)
            return _addresses(self.nodes.get(hostname), qtype)
        return Found(NXDOMAIN)

    def _service(self, rest: Sequence[str], qtype: int) -> Found:  # noqa: PLR0911 - per form
        protocol = tag = None
        if not rest:
            return Found(NOERROR)  # service.DOMAIN: an empty non-terminal
        if len(rest) == 1 and rest[0] in PROTOCOLS:
            return Found(NOERROR if any(PROTOCOLS[rest[0]] in s.protocols
                                        for s in self.services.values()) else NXDOMAIN)
        if len(rest) == 1:
            service = self.services.get(rest[0])
        elif len(rest) == 2 and rest[1] in PROTOCOLS and rest[0].startswith("_"):
            service, protocol = self.services.get(rest[0][1:]), PROTOCOLS[rest[1]]
        elif len(rest) == 2:
            service, tag = self.services.get(rest[1]), rest[0]
        else:
            return Found(NXDOMAIN)
        if service is None:
            return Found(NXDOMAIN)
        targets = service.select(protocol, tag)
        if not targets:
            return Found(NXDOMAIN)
        if qtype == SRV:
            return Found(NOERROR, srv=targets, cache=service.cache)
        ips = of_type((t.ip for t in targets), qtype) if qtype in (A, AAAA) else ()
        return Found(NOERROR, ips=ips, cache=service.cache)


def _addresses(ips: tuple[IP, ...] | None, qtype: int) -> Found:
    if not ips:
        return Found(NXDOMAIN)
    if qtype not in (A, AAAA):
        return Found(NOERROR)
    return Found(NOERROR, ips=of_type(ips, qtype))


def _addrs(old: Mapping[str, ServiceZone], new: Mapping[str, ServiceZone],
           previous: Mapping[str, tuple[IP, ...]]) -> dict[str, tuple[IP, ...]]:
    """<id-hash>.addr names: the previous index with only the changed services' targets
    taken out and put in (a change costs what changed, not the whole registry)."""
    addrs = dict(previous)
    for name, gone in old.items():
        if new.get(name) is not gone:
            for target in gone.targets:
                ips = list(addrs.get(target.label, ()))
                if target.ip in ips:
                    ips.remove(target.ip)
                if ips:
                    addrs[target.label] = tuple(ips)
                else:
                    addrs.pop(target.label, None)
    for name, service in new.items():
        if old.get(name) is not service:
            for target in service.targets:
                addrs[target.label] = (*addrs.get(target.label, ()), target.ip)
    return addrs
