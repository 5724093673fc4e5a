"""In-memory stand-ins for pure-logic unit tests. Behaviour that touches Docker or etcd is
tested against the real ones in tests/integration."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from registrator.errors import LeaseLostError
from registrator.stores.base import KeyValue


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, KeyValue] = {}
        self.leases: set[int] = set()
        self.next_lease = 100
        self.applied: list[tuple[list[tuple[str, str]], list[str]]] = []
        self.reads: list[tuple[str, str]] = []  # (key or prefix, "key" | "prefix")

    def connect(self) -> None:
        return

    def grant_lease(self, ttl: int) -> int:
        self.next_lease += 1
        self.leases.add(self.next_lease)
        return self.next_lease

    def refresh_lease(self, lease: int) -> int:
        if lease not in self.leases:
            raise LeaseLostError(str(lease))
        return 30

    def revoke_lease(self, lease: int) -> None:
        self.leases.discard(lease)
        self.data = {k: kv for k, kv in self.data.items() if kv.lease != lease}

    def get(self, key: str) -> KeyValue | None:
        return self.data.get(key)

    def get_many(self, keys: Sequence[str]) -> list[KeyValue]:
        self.reads += [(k, "key") for k in keys]
        return [self.data[k] for k in dict.fromkeys(keys) if k in self.data]

    def get_prefix(self, prefix: str) -> list[KeyValue]:
        self.reads.append((prefix, "prefix"))
        return [kv for k, kv in sorted(self.data.items()) if k.startswith(prefix)]

    def lease_ttl(self, lease: int) -> tuple[int, int]:
        return (30, 30) if lease in self.leases else (-1, 0)

    def apply(self, puts: Sequence[tuple[str, str]], deletes: Sequence[str],
              lease: int) -> list[str]:
        if puts and lease not in self.leases:
            raise LeaseLostError(str(lease))
        self.applied.append((list(puts), list(deletes)))
        for key in deletes:
            self.data.pop(key, None)
        for key, value in puts:
            self.data[key] = KeyValue(key, value.encode(), lease)
        return []

    def close(self) -> None:
        return


class FakeDocker:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}

    def running_ids(self) -> list[str]:
        return [cid for cid, c in self.containers.items() if c["State"]["Running"]]

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        found = self.containers.get(container_id)
        return copy.deepcopy(found) if found is not None else None

    def add(self, cid: str, name: str, host_port: int, labels: dict[str, str] | None = None,
            running: bool = True) -> None:
        self.containers[cid] = {
            "Id": cid, "Name": f"/{name}",
            "State": {"Running": running, "Paused": False},
            "Config": {"Image": "web:1", "Labels": labels or {}, "Env": [], "ExposedPorts": {}},
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0",
                                                      "HostPort": str(host_port)}]},
                                "Networks": {}},
        }
