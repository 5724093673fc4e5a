"""What the HTTP API and the web view answer, computed from one Snapshot (pure functions: no
store, no I/O). The objects are the SPEC §4 records as `ls --json` prints them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from registrator.configvalues.names import ConfigLayout, name_problem
from registrator.configvalues.resolve import resolve_all
from registrator.configvalues.values import describe
from registrator.consumers.registry import Record
from registrator.layouts import host_port
from registrator.serve.state import Snapshot
from registrator.stores.base import KeyValue

# Prometheus label names are [a-zA-Z_][a-zA-Z0-9_]*: meta keys are free text.
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def service_counts(snap: Snapshot) -> dict[str, int]:
    return {name: len(entries) for name, entries in snap.services.items()}


def instances(snap: Snapshot, name: str, tag: str | None = None,
              host: str | None = None) -> list[Record]:
    """One service's entries, sorted by host then id; `[]` for an unknown name."""
    return [e for e in snap.services.get(name, ())
            if (tag is None or tag in e["tags"]) and (host is None or e["host"] == host)]


def prometheus_sd(snap: Snapshot, service: str | None = None,
                  tag: str | None = None) -> list[dict[str, Any]]:
    """Prometheus HTTP SD: one target group per entry, with __meta_registrator_* labels."""
    names: Sequence[str] = [service] if service is not None else list(snap.services)
    return [_target_group(e) for name in names for e in instances(snap, name, tag)]


def _target_group(entry: Record) -> dict[str, Any]:
    labels = {
        "__meta_registrator_service": entry["name"],
        "__meta_registrator_id": entry["id"],
        "__meta_registrator_host": entry["host"],
        "__meta_registrator_address": entry["address"],
        "__meta_registrator_port": str(entry["port"]),
        "__meta_registrator_protocol": entry["protocol"],
        "__meta_registrator_health": entry["health"],
        "__meta_registrator_container_name": entry.get("container_name", ""),
        "__meta_registrator_image": entry.get("image", ""),
        # Commas at both ends, as Consul's __meta_consul_tags: a relabel regex `.*,web,.*`
        # then matches whole tags only.
        "__meta_registrator_tags": "," + ",".join(entry["tags"]) + "," if entry["tags"] else "",
    }
    for key, value in sorted(entry["meta"].items()):
        labels["__meta_registrator_meta_" + _NOT_LABEL.sub("_", key)] = value
    return {"targets": [host_port(entry["address"], entry["port"])], "labels": labels}


def config_apps(snap: Snapshot, prefix: str) -> list[str]:
    """The applications that have configuration values (names that are not valid are left
    out: someone else wrote them)."""
    root = prefix + "/config/"
    apps = {key[len(root):].split("/", 1)[0] for key in snap.config if key.startswith(root)}
    return sorted(app for app in apps if name_problem(app) is None)


def config_view(snap: Snapshot, prefix: str, app: str, host: str | None) -> list[dict[str, Any]]:
    """`config ls APP --json` from the copy: encrypted values are marked, their value null
    (neither plaintext nor ciphertext is ever served). No host: the defaults, as a host
    without overrides reads them."""
    layout = ConfigLayout(prefix)
    root = layout.app_root(app)
    entries = [KeyValue(k, v, 0) for k, v in snap.config.items() if k.startswith(root)]
    who = host or ""
    return [describe(r, who) for r in resolve_all(layout, app, who, entries).values()]


def config_rows(snap: Snapshot, prefix: str, app: str) -> list[dict[str, Any]]:
    """The web view's configuration table: each key with its default (None when it has
    none) and the hosts that override it, each value as `config ls --json` shows one."""
    layout = ConfigLayout(prefix)
    root = layout.app_root(app)
    defaults: dict[str, dict[str, Any]] = {}
    overrides: dict[str, list[dict[str, Any]]] = {}
    for store_key in sorted(k for k in snap.config if k.startswith(root)):
        parsed = layout.parse(app, store_key)
        if parsed is None:
            continue
        host, key = parsed
        value = KeyValue(store_key, snap.config[store_key], 0)
        for resolved in resolve_all(layout, app, host or "", [value]).values():
            if host is None:
                defaults[key] = describe(resolved, "")
            else:
                overrides.setdefault(key, []).append(describe(resolved, host))
    return [{"key": key, "default": defaults.get(key), "overrides": overrides.get(key, [])}
            for key in sorted(defaults.keys() | overrides.keys())]
