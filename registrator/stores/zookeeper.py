"""ZooKeeper store (SPEC §10). With zookeeper_base.py and zookeeper_watch.py, the only modules
that import kazoo; its exceptions become registrator's here.

The same key layout as etcd, as znode paths, with the same values. A "lease" is the session
of this store's client: `grant_lease` hands out the session id, and keys written on it are
EPHEMERAL znodes of that session, so ZooKeeper removes them when the session closes (SIGTERM)
or expires (crash, a cut-off longer than the session timeout). Parents are persistent.

Only znodes that carry data, or are ephemeral, are keys: the empty persistent znodes that
hold the path of a key are not (etcd has no directories)."""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from kazoo import exceptions as kz
from kazoo.client import KazooClient, KazooState
from kazoo.handlers.threading import KazooTimeoutError

from registrator.errors import LeaseLostError, StoreUnavailableError
from registrator.settings import ZooKeeperSettings
from registrator.stores import zookeeper_session as zks
from registrator.stores import zookeeper_watch
from registrator.stores.base import MAX_TXN_OPS, ChangeStream, KeyValue, batches
from registrator.stores.zookeeper_base import (
    KEY_REFUSED,
    ancestors,
    converted,
    delete_value,
    is_key,
    op_weight,
    put_value,
)
from registrator.stores.zookeeper_txn import plan

if TYPE_CHECKING:
    from kazoo.protocol.states import ZnodeStat

log = structlog.get_logger("registrator.store")
# kazoo logs every reconnect attempt through the standard library, which would print plain
# lines into the daemon's JSON log; the state changes that matter are logged here instead.
logging.getLogger("kazoo").addHandler(logging.NullHandler())
logging.getLogger("kazoo").propagate = False

# ZooKeeper drops the connection (it does not refuse the request) on a packet over
# jute.maxbuffer, 1 MiB by default: a transaction stays well under it, and a value that
# could not pass alone is refused before it is sent, not retried forever.
_TXN_BYTES = 512 * 1024
_MAX_VALUE = 1000 * 1000
_ATTEMPTS = 5  # a transaction re-planned when the znodes changed under it
class ZooKeeperStore:
    def __init__(self, settings: ZooKeeperSettings, *, create_chroot: bool = True) -> None:
        self._settings = settings
        self._create_chroot = create_chroot  # False for read-only commands (stores.readers)
        self._client: KazooClient | None = None
        self._lock = threading.Lock()
        self._timeout = settings.session_timeout
        self._lost: set[int] = set()  # sessions kazoo reported expired
        self._current = 0  # the session of the last connection (kazoo forgets it when cut)
        self._granted = 0  # a session handed out as a lease and not revoked
        # Ephemeral keys this session wrote and has not deleted: the keepalive checks one, so
        # a daemon whose entries another session took over (--takeover) learns it at once.
        self._ours: set[str] = set()  # written by the worker, read by the keepalive thread
        self._ours_lock = threading.Lock()
        self._witness: str | None = None  # our host record, checked at every write (plan)
        self._parents: set[str] = set()  # persistent parents known to exist
        # Ephemeral znodes of other sessions seen by reads: what revoke_lease of such a
        # session deletes (no client can close another's session).
        self._foreign: dict[int, set[str]] = {}
        self.views = zookeeper_watch.Views()
        # Clients given up on (their session refused for good): their late state changes
        # are not this store's any more.
        self._retired: weakref.WeakSet[KazooClient] = weakref.WeakSet()
        self._suspension = zks.Suspension(settings)
        self._refusal = ""

    def describe(self) -> str:
        return str(self._settings)

    # -- session ----------------------------------------------------------------------------
    @converted
    def connect(self) -> None:
        self._session()

    def _session(self) -> KazooClient:
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> KazooClient:
        return zks.open_client(self._settings, self._timeout, self._state_changed,
                           create_chroot=self._create_chroot)

    def _state_changed(self, client: KazooClient, state: str) -> None:
        """kazoo's thread: a LOST session stays lost (its ephemerals are gone), even though
        kazoo goes on to open a new one."""
        if client in self._retired:
            return
        if state == KazooState.CONNECTED:
            self._suspension.connected()
        else:
            self._suspension.suspended()
        if state == KazooState.CONNECTED and client.client_id:
            session = int(client.client_id[0])
            if self._current and session != self._current:
                self._lost.add(self._current)
                log.warning("zookeeper session expired; connected on a new one",
                            old=f"{self._current:x}", session=f"{session:x}")
            elif self._current:
                log.info("zookeeper connection back; session kept", session=f"{session:x}")
            self._current = session
        elif state == KazooState.LOST and self._current:
            self._lost.add(self._current)
        elif state == KazooState.SUSPENDED and self._current:
            log.warning("zookeeper connection lost; the session lives for its timeout",
                        session=f"{self._current:x}", timeout=self._timeout)

    @property
    def client(self) -> KazooClient:
        return self._session()

    def _session_id(self) -> int:
        client = self.client
        if not client.connected or not client.client_id:
            session = self._current
            reason = self._refused(client)
            if reason is not None:
                raise LeaseLostError(f"zookeeper session {session:x}: {reason}")
            raise StoreUnavailableError("zookeeper connection lost for "
                                        f"{self._suspension.down_for():.0f}s; the session "
                                        "may live on")
        return int(client.client_id[0])

    def _refused(self, client: KazooClient) -> str | None:
        """Why the servers refuse `client`'s session for good, when they do: it is then given
        up, and the next call opens a new session (kazoo would retry the old one forever)."""
        if client in self._retired:
            return self._refusal
        reason = self._suspension.refused(client)
        if reason is None:
            return None
        with self._lock:  # held while a new client opens: none does meanwhile
            if self._client is not client:
                return reason  # another thread gave it up first
            self._client = None
            self._retired.add(client)
            old, self._current, self._refusal = self._current, 0, reason
            if old:
                self._lost.add(old)
            self._parents.clear()  # the servers lost every znode
            self._mine([], clear=True)
            self._suspension.connected()  # the new client's own time starts at its connect
        log.warning("zookeeper refuses this session; starting a new one", session=f"{old:x}",
                    reason=reason)
        zks.stop_in_background(client)
        return reason

    def check_refused(self, client: KazooClient) -> None:
        """For a watch on `client`: StoreUnavailableError once its session is refused for
        good (the consumer reads again, on a new session)."""
        if not client.connected:
            reason = self._refused(client)
            if reason is not None:
                raise StoreUnavailableError(f"{reason}; reading again on a new session")

    def _live(self, lease: int) -> int:
        """The session `lease` names, when it is still this client's; LeaseLostError when it
        expired (kazoo then runs a new one)."""
        if lease in self._lost:
            raise LeaseLostError(f"zookeeper session {lease:x} expired")
        session = self._session_id()
        if lease and session != lease:
            raise LeaseLostError(f"zookeeper session {lease:x} expired (now {session:x})")
        return session

    @converted
    def grant_lease(self, ttl: int) -> int:
        if ttl != self._timeout:
            # The session timeout is fixed when the session is made: open one with `ttl`.
            self.close()
            self._timeout = ttl
        client = self.client
        deadline = time.monotonic() + self._settings.timeout
        while not client.connected and time.monotonic() < deadline:
            if self._refused(client) is not None:
                client = self.client  # a new session
            time.sleep(0.05)  # kazoo is reconnecting on its own thread
        session = self._session_id()
        if session != self._granted:
            self._mine([], clear=True)  # a new session: nothing is ours yet
        self._granted = session
        return session

    @converted
    def refresh_lease(self, lease: int) -> int:
        """kazoo pings the server on its own and the session lives while the connection does;
        one read proves the server answers now, as etcd's keepalive does (health, metrics)."""
        session = self._live(lease)
        with self._ours_lock:
            witness = min(self._ours, key=_witness_first, default="/")
        stat = self.client.exists_async(witness).get(
            timeout=min(self._settings.timeout, self._timeout / 3))
        self._live(lease)
        if stat is not None and witness != "/" and stat.ephemeralOwner != session:
            # No client can end another's session: this is how etcd's revoke reaches us.
            with self._ours_lock:
                self._ours.clear()  # the witness stays: no write goes to a key taken over
            raise LeaseLostError(f"{witness} now belongs to zookeeper session "
                                 f"{stat.ephemeralOwner:x}, not ours ({session:x})")
        return int(self._timeout)

    @converted
    def revoke_lease(self, lease: int) -> None:
        if lease == self._current and self._client is not None:
            self._granted = 0
            self._mine([], clear=True)
            self.close()  # closing the session removes its ephemerals at once
            return
        for path in sorted(self._foreign.pop(lease, set())):
            try:
                stat = self.client.exists(path)
                if stat is not None and stat.ephemeralOwner == lease:
                    self.client.delete(path, version=stat.version)
            except (kz.NoNodeError, kz.BadVersionError):
                continue

    def lease_ttl(self, lease: int) -> tuple[int, int]:
        """Another session's time left is not visible to a client: it counts as unknown."""
        client = self._client
        if (client is not None and client.connected and client.client_id
                and int(client.client_id[0]) == lease):
            return int(self._timeout), int(self._timeout)
        return -1, 0

    # -- reads ------------------------------------------------------------------------------
    def _kv(self, path: str, data: bytes | None, stat: ZnodeStat) -> KeyValue:
        owner = int(stat.ephemeralOwner)
        if owner and owner != self._current:
            self._foreign.setdefault(owner, set()).add(path)
        return KeyValue(path, data or b"", owner)

    @converted
    def get(self, key: str) -> KeyValue | None:
        try:
            data, stat = self.client.get(key)
        except kz.NoNodeError:
            return None
        return self._kv(key, data, stat) if is_key(data, stat) else None

    @converted
    def get_many(self, keys: Sequence[str]) -> list[KeyValue]:
        client = self.client
        pending = [(k, client.get_async(k)) for k in dict.fromkeys(keys)]
        out = []
        for key, result in pending:
            try:
                data, stat = result.get(timeout=self._settings.timeout)
            except kz.NoNodeError:
                continue
            if is_key(data, stat):
                out.append(self._kv(key, data, stat))
        return out

    @converted
    def get_prefix(self, prefix: str) -> list[KeyValue]:
        nodes = zookeeper_watch.walk(self.client, prefix, self._settings.timeout)
        return [self._kv(path, data, stat) for path, data, stat in nodes
                if is_key(data, stat) and path.startswith(prefix)]

    # -- writes -----------------------------------------------------------------------------
    def apply(self, puts: Sequence[tuple[str, str]], deletes: Sequence[str],
              lease: int) -> list[str]:
        put_map = dict(puts)
        refused = [k for k, v in put_map.items() if len(v.encode()) > _MAX_VALUE]
        dels: list[tuple[str, str | None]] = [
            (k, None) for k in dict.fromkeys(deletes) if k not in put_map]
        ops: list[tuple[str, str | None]] = [
            (k, v) for k, v in put_map.items() if k not in refused]
        for group in (dels, ops):  # deletes first, on their own, like etcd's
            for chunk in batches(group, MAX_TXN_OPS, _TXN_BYTES, op_weight):
                self._write(list(chunk), lease, refused)
        return refused

    @converted
    def _write(self, ops: list[tuple[str, str | None]], lease: int, refused: list[str],
               ) -> None:
        """One transaction (ZooKeeper's multi), planned from the znodes' current stats; made
        again when they changed between the read and the write."""
        for _ in range(_ATTEMPTS):
            session = self._live(lease) if lease else 0
            ops = [op for op in ops if op[0] not in refused]
            if not ops:
                return
            txn, planned = self._plan(ops, session)
            if not planned:
                self._mine(ops if session else [])
                return
            results = txn.commit_async().get(timeout=self._settings.timeout)
            # The ops before the one that failed come back RolledBackError, those after it
            # RuntimeInconsistency: neither is a failure of its own.
            failures = [(key, r) for key, r in zip(planned, results, strict=True)
                        if isinstance(r, Exception)
                        and not isinstance(r, (kz.RolledBackError, kz.RuntimeInconsistency))]
            if not failures:
                self._parents.update(a for key, value in ops if value is not None
                                     for a in ancestors(key))
                self._mine(ops if session else [])
                return
            for key, error in failures:
                if isinstance(error, KEY_REFUSED):
                    log.warning("zookeeper refused a key", key=key[:300],
                                reason=type(error).__name__)
                    refused.append(key)
                elif isinstance(error, kz.NoNodeError):
                    self._parents.clear()  # a parent went away (someone deleted a subtree)
                    if self._create_chroot:
                        zks.restore_chroot(self.client, self._settings, self._timeout)
                elif not isinstance(error, (kz.NodeExistsError, kz.BadVersionError,
                                            kz.NotEmptyError)):
                    raise error
        raise StoreUnavailableError("zookeeper: the znodes kept changing under a transaction")

    def _mine(self, ops: list[tuple[str, str | None]], clear: bool = False) -> None:
        with self._ours_lock:
            if clear:
                self._ours.clear()
                self._witness = None
            self._ours.update(key for key, value in ops if value is not None)
            self._ours.difference_update(key for key, value in ops if value is None)
            found = min(self._ours, key=_witness_first, default="")
            if "/hosts/" in found:  # kept when refresh_lease forgets the rest
                self._witness = found

    def _plan(self, ops: list[tuple[str, str | None]], session: int,
              ) -> tuple[Any, list[str]]:
        return plan(self.client, ops, session, self._parents, self._settings.timeout,
                    self._witness)

    @converted
    def put(self, key: str, value: bytes) -> None:
        """A persistent znode (configuration values outlive every session)."""
        put_value(self.client, key, value)

    @converted
    def delete(self, key: str) -> bool:
        return delete_value(self.client, key)

    # -- consumers --------------------------------------------------------------------------
    @converted
    def snapshot(self, prefix: str) -> tuple[list[KeyValue], int]:
        client = self.client
        self.check_refused(client)
        nodes = zookeeper_watch.walk(client, prefix, self._settings.timeout)
        kvs = [KeyValue(path, data or b"", int(stat.ephemeralOwner))
               for path, data, stat in nodes if is_key(data, stat) and path.startswith(prefix)]
        revision = zookeeper_watch.revision_of(stat for _, _, stat in nodes)
        self.views.remember(prefix, revision, {kv.key: kv.value for kv in kvs})
        return kvs, revision

    @converted
    def watch(self, prefix: str, start_revision: int) -> ChangeStream:
        client = self.client
        self.check_refused(client)  # a follower retries its watch, not its read
        return zookeeper_watch.TreeStream(client, prefix, start_revision, self.views,
                                          self._settings.timeout,
                                          functools.partial(self.check_refused, client))

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        self._parents.clear()
        if client is not None and self._granted and self._granted == self._current:
            # Entries kept on purpose (--keep-on-exit, or for the next run to take over):
            # closing the session would remove them. The process exits with kazoo's daemon
            # threads; the server expires the session after its timeout.
            log.info("leaving the zookeeper session to expire", session=f"{self._granted:x}")
            return
        self._current = 0
        if client is not None:
            try:
                client.stop()
                client.close()
            except (kz.KazooException, KazooTimeoutError) as exc:
                log.debug("zookeeper close", error=str(exc))


def _witness_first(key: str) -> tuple[bool, str]:
    """The host record (SPEC §4 `<prefix>/hosts/<hostname>`) first: the key no other host
    writes, whatever ids containers choose."""
    return "/hosts/" not in key, key
