"""What the consumers accept from the registry, field by field, as strictly as the daemon
writes them (SPEC §2-4): whoever can write under the prefix must not be able to put a line of
their own into a load balancer's configuration through any field a template prints. Tags,
meta and host labels are free text by design: templates quote them (quoting.py)."""

from __future__ import annotations

import functools
import re
from typing import Any

from registrator.addresses import parse_address
from registrator.keys import segment_problem

PROTOCOLS = frozenset({"tcp", "udp"})
HEALTH = frozenset({"none", "starting", "healthy", "unhealthy"})  # Docker's, or "none"
# Docker's container names ([a-zA-Z0-9][a-zA-Z0-9_.-]+, reported with a leading slash),
# its ids (hex; Podman's too), image references, and the daemon's own timestamps.
_FORMATS: dict[str, re.Pattern[str]] = {
    "container_name": re.compile(r"/?[A-Za-z0-9][A-Za-z0-9_.-]{0,254}"),
    "container_id": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"),
    "image": re.compile(r"[A-Za-z0-9_.:/@+-]{0,512}"),
    "registered_at": re.compile(r"[0-9TZ:.+-]{0,40}"),
}


# Thousands of entries share a few hosts, names and addresses: each is checked once.
_segment_problem = functools.lru_cache(maxsize=4096)(segment_problem)


@functools.lru_cache(maxsize=4096)
def address_problem(value: str) -> str | None:
    """An IP literal as the daemon stores it (addresses.parse_address: normalised, bare,
    not a wildcard, a zone only of interface-name characters). The SPEC stores addresses
    only, never DNS names."""
    if parse_address(value) == value:
        return None
    return "is not an IP address as the daemon writes one"


def entry_problem(record: dict[str, Any]) -> str | None:
    """Why a parsed entry (SPEC §4 object, types already checked) cannot be handed to a
    template; None when it can. The reason quotes no value: values may be hostile."""
    port = record["port"]
    problems = [
        None if 1 <= port <= 65535 else f"port {port} is outside 1-65535",
        None if record["protocol"] in PROTOCOLS else "protocol is not tcp or udp",
        None if record["health"] in HEALTH else "health is not none, starting, healthy or "
                                                "unhealthy",
        _named("id", segment_problem(record["id"])),  # unique: not worth a cache entry
        *(_named(field, _segment_problem(record[field])) for field in ("name", "host")),
        _named("address", address_problem(record["address"])),
        *(None if pattern.fullmatch(record[field])
          else f"{field} has characters the daemon never writes there"
          for field, pattern in _FORMATS.items()),
    ]
    return next((problem for problem in problems if problem), None)


def host_problem(record: dict[str, Any], hostname: str) -> str | None:
    """The same for a host record (SPEC §4): the fields the daemon writes are checked; fields
    of newer versions pass through untouched, like labels (free text: templates quote)."""
    address, labels = record.get("address"), record.get("labels", {})
    lease, ttl = record.get("lease", "0"), record.get("ttl", 1)
    problems = [
        None if record.get("hostname", hostname) == hostname
        else "hostname differs from the key's",
        None if address is None else _named(
            "address", address_problem(address) if isinstance(address, str) else "is not text"),
        None if isinstance(labels, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        else "labels is not an object of strings",
        None if isinstance(lease, str) and re.fullmatch(r"[0-9a-f]{1,16}", lease)
        else "lease is not a hexadecimal lease id",
        None if isinstance(ttl, int) and not isinstance(ttl, bool) else "ttl is not an integer",
        *(None if isinstance(value := record.get(field, ""), str) and value.isprintable()
          else f"{field} is not one line of text"
          for field in ("registrator_version", "started_at")),
    ]
    return next((problem for problem in problems if problem), None)


def _named(field: str, problem: str | None) -> str | None:
    return None if problem is None else f"{field} {problem}"
