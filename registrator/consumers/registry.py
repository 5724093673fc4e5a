"""The consumers' view of the store: the entries and host records under one prefix, parsed
once per change. A value that cannot be read is one warning and is left out; it never breaks
the rest (a hostile or broken registry must not stop a load balancer's config)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import structlog

from registrator.consumers.fields import entry_problem, host_problem
from registrator.keys import KeySpace, segment_problem
from registrator.layouts import parse_entry

log = structlog.get_logger("registrator.consumers")

# Real entries are well under 2 KiB; a value this big is junk or an attack, not a service.
MAX_VALUE_BYTES = 64 * 1024
Record = dict[str, Any]
_SHARED = ("name", "host", "protocol", "image", "health", "registered_at")


class Registry:
    """Service entries (SPEC §4 objects) and host records, keyed by store key."""

    def __init__(self, keys: KeySpace) -> None:
        self.keys = keys
        self._entries: dict[str, Record] = {}
        self._hosts: dict[str, Record] = {}

    def load(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Replace everything with `items` (a fresh read of the prefix)."""
        self._entries.clear()
        self._hosts.clear()
        for key, value in items:
            self.put(key, value)

    def put(self, key: str, value: bytes) -> Record | None:
        """Take in one stored value; returns the parsed record, None when it was left out
        (or is not a services/hosts key at all)."""
        self.delete(key)
        if key.startswith(self.keys.services_root):
            entry = self._parse_entry(key, value)
            if entry is not None:
                self._entries[key] = entry
            return entry
        if key.startswith(self.keys.hosts_root):
            host = self._parse_host(key, value)
            if host is not None:
                self._hosts[key] = host
            return host
        return None

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)
        self._hosts.pop(key, None)

    def get(self, key: str) -> Record | None:
        return self._entries.get(key) or self._hosts.get(key)

    def entries(self) -> list[Record]:
        """Every readable entry, sorted by name then id."""
        return sorted(self._entries.values(), key=lambda e: (e["name"], e["id"]))

    def services(self) -> dict[str, list[Record]]:
        """name -> entries sorted by host then id; names in order."""
        out: dict[str, list[Record]] = {}
        for entry in sorted(self._entries.values(), key=lambda e: (e["name"], e["host"], e["id"])):
            out.setdefault(entry["name"], []).append(entry)
        return out

    def hosts(self) -> list[Record]:
        return sorted(self._hosts.values(), key=lambda h: str(h.get("hostname", "")))

    def _parse_entry(self, key: str, value: bytes) -> Record | None:
        if len(value) > MAX_VALUE_BYTES:
            return _skip(key, f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
        where = self.keys.parse_service(key)
        if where is None:
            return _skip(key, "key is not <prefix>/services/<name>/<id>")
        try:
            service, registered_at = parse_entry(value)
        except ValueError as exc:
            return _skip(key, str(exc))
        if (service.name, service.id) != where:
            return _skip(key, f"entry says name {service.name[:64]!r} id {service.id[:64]!r}")
        record: Record = service.to_record(registered_at)
        problem = entry_problem(record)
        if problem is not None:
            return _skip(key, problem)
        for field in _SHARED:
            # Thousands of entries repeat a few hosts, names and images: keep one copy each.
            record[field] = sys.intern(str(record[field]))
        return record

    def _parse_host(self, key: str, value: bytes) -> Record | None:
        hostname = key[len(self.keys.hosts_root):]
        if len(value) > MAX_VALUE_BYTES:
            return _skip(key, f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
        if "/" in hostname or segment_problem(hostname):
            return _skip(key, "key is not <prefix>/hosts/<hostname>")
        try:
            record = json.loads(value)
        except (ValueError, RecursionError) as exc:
            return _skip(key, f"unreadable host record: {exc!r}"[:200])
        if not isinstance(record, dict):
            return _skip(key, "host record is not a JSON object")
        problem = host_problem(record, hostname)
        if problem is not None:
            return _skip(key, problem)
        record.setdefault("hostname", hostname)
        return record


def _skip(key: str, reason: str) -> Record | None:
    log.warning("skipping a registry entry", key=key[:300], reason=reason)
    return None
