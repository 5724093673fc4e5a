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


@dataclass(frozen=True, slots=True)
class Change:
    """One change under a watched prefix."""

    op: str  # "put" or "delete"
    key: str
    value: bytes  # b"" for a delete
    revision: int  # the store revision that made the change


class ChangeStream(Protocol):
    """An open watch. Reads happen on one thread; close() may come from any other."""

    def next_batch(self, timeout: float | None = None) -> list[Change] | None:
        """The changes of the next store response, oldest first ([] for a progress notice);
        None when `timeout` passed without one or the stream was closed. Raises
        StoreUnavailableError when the stream broke, CompactedError when the history it needs
        was compacted away."""

    def close(self) -> None: ...


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

    def close(self) -> None: ...

    # Read-only consumers (SPEC §8): a consistent read, then a watch that resumes from it.
    def snapshot(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` and the store revision they were read at."""

    def watch(self, prefix: str, start_revision: int) -> ChangeStream:
        """Changes under `prefix` from `start_revision` on. CompactedError when that revision
        is compacted away (here, or from the stream's first next_batch: etcd says so after it
        confirmed the watch); StoreUnavailableError when the store cannot be reached."""


def batches(items: Sequence[T], size: int = MAX_TXN_OPS) -> list[Sequence[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
