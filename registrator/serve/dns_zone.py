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

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from registrator.layouts import DNS_LABEL

log = structlog.get_logger("registrator.serve.dns")

Record = Mapping[str, Any]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
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


@dataclass(frozen=True, slots=True)
class Target:
    """One instance as DNS sees it."""

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
    try:
        return ipaddress.ip_address(str(address))
    except ValueError:
        return None


def _unique(ips: Sequence[IP]) -> tuple[IP, ...]:
    return tuple(dict.fromkeys(ips))


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
            tags = frozenset(t.lower() for t in entry.get("tags") or () if isinstance(t, str)
                             and DNS_LABEL.match(t.lower()))
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

    @classmethod
    def build(cls, snapshot: SnapshotLike, previous: Zone | None = None) -> Zone:
        old = previous.services if previous is not None else {}
        zone = cls(snapshot.revision)
        # DNS names are case-insensitive (RFC 4343) and questions are looked up lowercased:
        # "MyApp" is served as myapp (two names differing in case only, as one).
        by_dns_name: dict[str, Sequence[Record]] = {}
        for name, entries in snapshot.services.items():
            lower = name.lower()
            if DNS_LABEL.match(lower):
                # The snapshot's own sequence when alone (so `is` finds it unchanged).
                had = by_dns_name.get(lower)
                by_dns_name[lower] = entries if had is None else [*had, *entries]
        for name, entries in by_dns_name.items():
            kept = old.get(name)
            if kept is not None and (kept.entries is entries or kept.entries == entries):
                zone.services[name] = kept
            else:
                zone.services[name] = ServiceZone(name, entries)
        addrs: dict[str, list[IP]] = {}
        for service in zone.services.values():
            for target in service.targets:
                addrs.setdefault(target.label, []).append(target.ip)
        zone.addrs = {label: _unique(ips) for label, ips in addrs.items()}
        nodes: dict[str, list[IP]] = {}
        for host in snapshot.hosts:
            hostname, ip = str(host.get("hostname", "")).lower(), _ip(host.get("address"))
            if ip is not None and all(DNS_LABEL.match(p) for p in hostname.split(".")):
                nodes.setdefault(hostname, []).append(ip)
        zone.nodes = {name: _unique(ips) for name, ips in nodes.items()}
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
            ips = self.addrs.get(rest[0]) if rest else ()
            return _addresses(ips, qtype)
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
        ips = _unique([t.ip for t in targets if t.ip.version == (4 if qtype == A else 6)])
        return Found(NOERROR, ips=ips if qtype in (A, AAAA) else (), cache=service.cache)


def _addresses(ips: tuple[IP, ...] | None, qtype: int) -> Found:
    if not ips:
        return Found(NXDOMAIN)
    if qtype not in (A, AAAA):
        return Found(NOERROR)
    return Found(NOERROR, ips=tuple(ip for ip in ips if ip.version == (4 if qtype == A else 6)))
