"""`registrator ls`: what is registered, as a table for people or JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from registrator.consumers.registry import Record, Registry
from registrator.keys import KeySpace
from registrator.layouts import host_port
from registrator.stores.base import Store

COLUMNS = ("NAME", "ID", "ADDRESS", "PROTO", "HOST", "HEALTH", "TAGS", "AGE")


def read_registry(store: Store, keys: KeySpace) -> Registry:
    kvs, _ = store.snapshot(keys.root)
    registry = Registry(keys)
    registry.load((kv.key, kv.value) for kv in kvs)
    return registry


def select(entries: list[Record], name: str | None, host: str | None) -> list[Record]:
    return [e for e in entries
            if (name is None or e["name"] == name) and (host is None or e["host"] == host)]


def as_json(records: list[Record]) -> str:
    return json.dumps(records, indent=2, sort_keys=True)


def age(stamp: str, now: datetime) -> str:
    """'42s', '7m', '3h', '12d'; '-' when the stamp cannot be read."""
    try:
        then = datetime.fromisoformat(stamp)
        seconds = int((now - then).total_seconds())
    except (ValueError, TypeError):
        return "-"
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(entries: list[Record], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    rows = [COLUMNS] + [
        (e["name"], e["id"], host_port(e["address"], e["port"]), e["protocol"], e["host"],
         e["health"], ",".join(e["tags"]) or "-", age(e.get("registered_at", ""), now))
        for e in entries]
    return _columns(rows)


def hosts_table(hosts: list[Record]) -> str:
    rows = [("HOSTNAME", "ADDRESS", "VERSION", "STARTED")] + [
        (str(h.get("hostname", "")), str(h.get("address", "")),
         str(h.get("registrator_version", "")), str(h.get("started_at", ""))) for h in hosts]
    return _columns(rows)


def printable(text: str) -> str:
    """Names and ids come from container labels: keep control characters off the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _columns(rows: Sequence[Sequence[str]]) -> str:
    clean = [tuple(printable(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in clean) for i in range(len(clean[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in clean)
