"""Planning one ZooKeeper transaction (a multi) from the znodes' current stats. Like
zookeeper.py, allowed kazoo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registrator.errors import LeaseLostError
from registrator.stores.zookeeper_base import ancestors

if TYPE_CHECKING:
    from kazoo.client import KazooClient
    from kazoo.protocol.states import ZnodeStat


def plan(client: KazooClient, ops: list[tuple[str, str | None]], session: int,  # noqa: PLR0913 - what one plan reads
         parents: set[str], timeout: float, witness: str | None = None,
         ) -> tuple[Any, list[str]]:
    """The transaction for `ops` and the key of each of its operations, in order. An
    ephemeral znode of another session (or a persistent one) is deleted and made again:
    set_data would leave it with its old owner, and it would vanish with that session.
    `parents`: persistent parents known to exist (those found are added).

    `witness`: a key only this session writes (the host record). Read in the same round
    trip; when another session now owns it, this host name was taken over (--takeover) and
    nothing is written: LeaseLostError. Otherwise, before the old daemon noticed, it would
    move keys onto its own session, and they would vanish with it."""
    # Shallow first: a key that is also the path of another (config "a" and "a/b") is made
    # before its child.
    ops = sorted(ops, key=lambda op: op[0].count("/"))
    owner = client.exists_async(witness) if witness and session else None
    stats = [(key, value, client.exists_async(key)) for key, value in ops]
    # Missing parents are created in the same transaction: ZooKeeper syncs every write to
    # its log, so one multi instead of a create per parent (measured: 3x faster for a
    # service with a new name).
    puts = {key for key, value in ops if value is not None}
    wanted = sorted({a for key in puts for a in ancestors(key)
                     if a not in parents and a not in puts}, key=lambda a: a.count("/"))
    pending_parents = [(a, client.exists_async(a)) for a in wanted]
    if owner is not None:
        check_owner(witness or "", owner.get(timeout=timeout), session)
    txn = client.transaction()
    planned: list[str] = []
    for path, pending_parent in pending_parents:
        if pending_parent.get(timeout=timeout) is None:
            txn.create(path, b"")
            planned.append(path)
        else:
            parents.add(path)
    for key, value, pending in stats:
        stat: ZnodeStat | None = pending.get(timeout=timeout)
        if value is None:
            if stat is None:
                continue
            if stat.numChildren:  # a key that is also a path: keep the path, drop the value
                txn.set_data(key, b"", version=stat.version)
            else:
                txn.delete(key, version=stat.version)
            planned.append(key)
            continue
        data = value.encode()
        if stat is not None and (stat.ephemeralOwner == session or stat.numChildren):
            txn.set_data(key, data, version=stat.version)
            planned.append(key)
            continue
        if stat is not None:
            txn.delete(key, version=stat.version)
            planned.append(key)
        txn.create(key, data, ephemeral=bool(session))
        planned.append(key)
    return txn, planned


def check_owner(witness: str, stat: ZnodeStat | None, session: int) -> None:
    """LeaseLostError when `witness`, a key only `session` writes, is another session's
    (not when it is gone or persistent: nobody else claims it then)."""
    if stat is not None and stat.ephemeralOwner not in (0, session):
        raise LeaseLostError(f"{witness} now belongs to zookeeper session "
                             f"{stat.ephemeralOwner:x}, not ours ({session:x})")
