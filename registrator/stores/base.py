"""The interface every store implements. Keys and values are text; a lease is an opaque
integer handle that ties keys to this host's liveness."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")

# etcd rejects transactions over 128 operations by default (--max-txn-ops).
MAX_TXN_OPS = 128


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    lease: int  # 0 when the key has no lease


class Store(Protocol):
    def connect(self) -> None:
        """Open the session; raises StoreUnavailableError when the store cannot be reached."""

    def grant_lease(self, ttl: int) -> int: ...

    def refresh_lease(self, lease: int) -> int:
        """Keep the lease alive; returns the TTL it now has. Raises LeaseLostError when the
        store no longer knows it."""

    def revoke_lease(self, lease: int) -> None:
        """Drop the lease and every key on it; a lease the store does not know is fine."""

    def get(self, key: str) -> KeyValue | None: ...

    def get_prefix(self, prefix: str) -> list[KeyValue]: ...

    def apply(self, puts: Sequence[tuple[str, str]], deletes: Sequence[str], lease: int) -> None:
        """Write `puts` on `lease` and delete `deletes`, in transactions of at most
        MAX_TXN_OPS operations each."""

    def put(self, key: str, value: bytes) -> None:
        """Write one key without a lease, in one request (configuration values, SPEC §9:
        they outlive every host's session)."""

    def delete(self, key: str) -> bool:
        """Delete one key in one request; True when it existed."""

    def close(self) -> None: ...


def batches(items: Sequence[T], size: int = MAX_TXN_OPS) -> list[Sequence[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
