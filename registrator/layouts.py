"""What a Service becomes in the store: the primary JSON entry, plus the keys of each extra
layout (`--layout`). Parsing stored entries back lives here too, so both directions agree."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

from registrator.errors import InvalidKeyError
from registrator.keys import KeySpace
from registrator.model import Service

# Top-level names the primary layout uses; a gliderlabs key <prefix>/<name>/... with one of
# these names would land inside them.
RESERVED_NAMES = frozenset({"services", "hosts", "config"})


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

    def primary_key(self, service: Service) -> str:
        return self.keys.service(service.name, service.id)

    def render(self, service: Service, registered_at: str) -> dict[str, str]:
        """Every key/value the service owns. Raises InvalidKeyError for unsafe segments."""
        record = service.to_record(registered_at)
        out = {self.primary_key(service): json.dumps(record, sort_keys=True)}
        if "gliderlabs" in self.layouts and service.name not in RESERVED_NAMES:
            out[self.keys.child(service.name, service.id)] = host_port(service.address,
                                                                       service.port)
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
