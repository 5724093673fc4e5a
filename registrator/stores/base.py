"""The interface every store implements. Keys and values are text; a lease is an opaque
integer handle that ties keys to this host's liveness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")

# etcd rejects transactions over 128 operations by default (--max-txn-ops), and requests
# over 1.5 MiB (--max-request-bytes); a store configured lower is adapted to at run time.
MAX_TXN_OPS = 128
MAX_TXN_BYTES = 1024 * 1024


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

    def lease_ttl(self, lease: int) -> tuple[int, int]:
        """(seconds left, TTL it was granted with); (-1, 0) when the store does not know it."""

    def get(self, key: str) -> KeyValue | None: ...

    def get_prefix(self, prefix: str) -> list[KeyValue]: ...

    def get_many(self, keys: Sequence[str]) -> list[KeyValue]:
        """The keys that exist among `keys`, read in as few requests as the store allows."""

    def apply(self, puts: Sequence[tuple[str, str]], deletes: Sequence[str],
              lease: int) -> list[str]:
        """Delete `deletes` and write `puts` on `lease`, in transactions of at most
        MAX_TXN_OPS operations and MAX_TXN_BYTES each (deletes in transactions of their own,
        so they go through even when the store takes no more writes). Returns the keys the
        store refused to take even alone (too large for it); everything else is written."""

    def put(self, key: str, value: bytes) -> None:
        """Write one key without a lease, in one request (configuration values, SPEC §9:
        they outlive every host's session)."""

    def delete(self, key: str) -> bool:
        """Delete one key in one request; True when it existed."""

    def close(self) -> None: ...

    # Read-only consumers (SPEC §8): a consistent read, then a watch that resumes from it.
    def snapshot(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` and the store revision they were read at."""

    def watch(self, prefix: str, start_revision: int) -> ChangeStream:
        """Changes under `prefix` from `start_revision` on. CompactedError when that revision
        is compacted away (here, or from the stream's first next_batch: etcd says so after it
        confirmed the watch); StoreUnavailableError when the store cannot be reached."""


def batches(items: Sequence[T], size: int = MAX_TXN_OPS, max_bytes: int = MAX_TXN_BYTES,
            weight: Callable[[T], int] = lambda _item: 0) -> list[Sequence[T]]:
    """Consecutive runs of at most `size` items whose weights add up to at most
    `max_bytes` (an item heavier than that alone gets a batch of its own)."""
    out: list[Sequence[T]] = []
    start, total = 0, 0
    for i, item in enumerate(items):
        w = weight(item)
        if i > start and (i - start >= size or total + w > max_bytes):
            out.append(items[start:i])
            start, total = i, 0
        total += w
    if start < len(items):
        out.append(items[start:])
    return out
