"""What a Service becomes in the store: the primary JSON entry, plus the keys of each extra
layout (`--layout`). Parsing stored entries back lives here too, so both directions agree."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from registrator.errors import InvalidKeyError
from registrator.keys import KeySpace
from registrator.model import Service

# Top-level names the other layouts use; a gliderlabs key <prefix>/<name>/... with one of
# these names would land inside them.
RESERVED_NAMES = frozenset({"services", "hosts", "config", "skydns", "naming", "index"})
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def host_port(address: str, port: int) -> str:
    try:
        is_v6 = ipaddress.ip_address(address).version == 6
    except ValueError:
        is_v6 = False
    return f"[{address}]:{port}" if is_v6 else f"{address}:{port}"


@dataclass(frozen=True, slots=True)
class Renderer:
    keys: KeySpace
    layouts: Sequence[str] = ()
    skydns_domain: str = "skydns.local"

    def primary_key(self, service: Service) -> str:
        return self.keys.service(service.name, service.id)

    def render(self, service: Service, registered_at: str) -> dict[str, str]:
        """Every key/value the service owns. Raises InvalidKeyError for unsafe segments."""
        record = service.to_record(registered_at)
        primary = self.primary_key(service)
        out = {primary: json.dumps(record, sort_keys=True)}
        # The host's index: how this host finds its own entries without reading everyone's.
        out[self.keys.index(service.host, service.name, service.id)] = primary
        address = host_port(service.address, service.port)
        if "gliderlabs" in self.layouts and service.name not in RESERVED_NAMES:
            # What gliderlabs/registrator's etcd backend wrote.
            out[self.keys.child(service.name, service.id)] = address
        if "skydns" in self.layouts and DNS_LABEL.match(service.name):
            # CoreDNS etcd plugin (`etcd <domain> { path <prefix>/skydns }`): one record per
            # instance under the reversed domain; the leaf must be a DNS label, so a hash.
            leaf = hashlib.sha256(service.id.encode()).hexdigest()[:16]
            domain = reversed(self.skydns_domain.split("."))
            out[self.keys.child("skydns", *domain, service.name, leaf)] = json.dumps(
                {"host": service.address, "port": service.port})
        if "etcd-naming" in self.layouts:
            # etcd's gRPC naming resolver: <target>/<addr> -> endpoint JSON ("Op" for 3.4's
            # naming.Update, "Addr"/"Metadata" for 3.5's endpoints.Endpoint).
            out[self.keys.child("naming", service.name, address)] = json.dumps(
                {"Op": 0, "Addr": address, "Metadata": None})
        return out

    def owned_keys(self, service: Service) -> list[str]:
        """The keys `render` would produce; [] when the segments are unsafe."""
        try:
            return list(self.render(service, "").keys())
        except InvalidKeyError:
            return []


def parse_entry(raw: bytes) -> tuple[Service, str]:
    """(service, registered_at) from a stored primary value; ValueError when unreadable."""
    try:
        record = json.loads(raw)
        service = Service.from_record(record)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # RecursionError: deeply nested JSON; a corrupt value must never break a reconcile.
        raise ValueError(f"unreadable entry: {exc!r}"[:200]) from None
    registered_at = record.get("registered_at", "")
    return service, registered_at if isinstance(registered_at, str) else ""
