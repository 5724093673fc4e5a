"""`registrator watch`: one line per change under the prefix, from now on."""

from __future__ import annotations

import json

from registrator.consumers.ls import printable
from registrator.consumers.registry import Registry
from registrator.keys import KeySpace
from registrator.stores.base import Change


def wanted(keys: KeySpace, change: Change, name: str | None) -> bool:
    if name is not None:
        return change.key.startswith(f"{keys.services_root}{name}/")
    return change.key.startswith((keys.services_root, keys.hosts_root))


def line(change: Change, registry: Registry, as_json: bool) -> str | None:
    """The line for one change; None for a put whose value was left out (already warned)."""
    value = registry.get(change.key) if change.op == "put" else None
    if change.op == "put" and value is None:
        return None
    if as_json:
        return json.dumps({"op": change.op, "key": change.key, "value": value,
                           "revision": change.revision}, sort_keys=True)
    text = f"{change.op:<6} {change.key}"
    if value is not None and "port" in value:
        text += f"  {value['address']}:{value['port']} {value['health']}"
    return printable(f"{text}  rev={change.revision}")
