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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from kazoo import exceptions as kz
from kazoo.client import KazooClient, KazooState
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from registrator.errors import LeaseLostError, StoreUnavailableError
from registrator.settings import ZooKeeperSettings
from registrator.stores import zookeeper_watch
from registrator.stores.base import MAX_TXN_OPS, ChangeStream, KeyValue, batches
from registrator.stores.zookeeper_base import (
    KEY_REFUSED,
    ZxidReset,
    ancestors,
    converted,
    delete_value,
    is_key,
    op_weight,
    put_value,
)

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
    def __init__(self, settings: ZooKeeperSettings) -> None:
        self._settings = settings
        self._client: KazooClient | None = None
        self._lock = threading.Lock()
        self._timeout = settings.session_timeout
        self._zxid_reset = ZxidReset()
        self._lost: set[int] = set()  # sessions kazoo reported expired
        self._current = 0  # the session of the last connection (kazoo forgets it when cut)
        self._granted = 0  # a session handed out as a lease and not revoked
        # Ephemeral keys this session wrote and has not deleted: the keepalive checks one, so
        # a daemon whose entries another session took over (--takeover) learns it at once.
        self._ours: set[str] = set()  # written by the worker, read by the keepalive thread
        self._ours_lock = threading.Lock()
        self._parents: set[str] = set()  # persistent parents known to exist
        # Others' ephemeral znodes seen by reads: what revoke_lease of their session deletes.
        self._foreign: dict[int, set[str]] = {}
        self.views = zookeeper_watch.Views()

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
        s = self._settings
        auth = [("digest", f"{s.user}:{s.password}")] if s.user and s.password else None
        # Keys written with digest auth: all rights for that user, read for everyone (the
        # consumers' access; ZooKeeper ACLs are per znode, not inherited).
        acl = ([make_digest_acl(s.user, s.password, all=True),
                ACL(Permissions.READ, Id("world", "anyone"))]
               if s.user and s.password else None)
        if s.chroot:
            self._make_chroot(acl, auth)
        client = KazooClient(hosts=s.hosts + s.chroot, timeout=self._timeout,
                             connection_retry={"max_tries": -1, "delay": 0.1,
                                               "max_delay": 1.0},
                             auth_data=auth, default_acl=acl)
        client.add_listener(functools.partial(self._state_changed, client))
        try:
            client.start(timeout=s.timeout)
        except BaseException:
            client.stop()
            client.close()
            raise
        return client

    def _make_chroot(self, acl: list[ACL] | None, auth: list[tuple[str, str]] | None) -> None:
        """ZooKeeper clients do not create their chroot; everything under it would fail."""
        s = self._settings
        plain = KazooClient(hosts=s.hosts, timeout=self._timeout, auth_data=auth,
                            default_acl=acl)
        try:
            plain.start(timeout=s.timeout)
            plain.ensure_path(s.chroot)
        finally:
            plain.stop()
            plain.close()

    def _state_changed(self, client: KazooClient, state: str) -> None:
        """kazoo's thread: a LOST session stays lost (its ephemerals are gone), even though
        kazoo goes on to open a new one."""
        self._zxid_reset.changed(client, state == KazooState.SUSPENDED, self._timeout + 1)
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
            raise StoreUnavailableError("zookeeper connection lost; the session may live on")
        return int(client.client_id[0])

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
        if ttl != self._timeout:  # fixed when the session is made: open one with `ttl`
            self.close()
            self._timeout = ttl
        client = self.client
        deadline = time.monotonic() + self._settings.timeout
        while not client.connected and time.monotonic() < deadline:
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
        # The host record when there is one (SPEC §4 `<prefix>/hosts/<hostname>`): the key
        # no other host writes, whatever ids containers choose.
        with self._ours_lock:
            witness = min(self._ours, key=lambda k: ("/hosts/" not in k, k), default="/")
        stat = self.client.exists_async(witness).get(
            timeout=min(self._settings.timeout, self._timeout / 3))
        self._live(lease)
        if stat is not None and witness != "/" and stat.ephemeralOwner != session:
            # No client can end another's session: this is how etcd's revoke reaches us.
            self._mine([], clear=True)
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
            failures = [(key, r) for key, r in zip(planned, results, strict=True)
                        if isinstance(r, Exception) and not isinstance(r, kz.RolledBackError)]
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
                elif not isinstance(error, (kz.NodeExistsError, kz.BadVersionError,
                                            kz.NotEmptyError)):
                    raise error
        raise StoreUnavailableError("zookeeper: the znodes kept changing under a transaction")

    def _mine(self, ops: list[tuple[str, str | None]], clear: bool = False) -> None:
        with self._ours_lock:
            if clear:
                self._ours.clear()
            self._ours.update(key for key, value in ops if value is not None)
            self._ours.difference_update(key for key, value in ops if value is None)

    def _plan(self, ops: list[tuple[str, str | None]], session: int,
              ) -> tuple[Any, list[str]]:
        """The transaction for `ops` and the key of each of its operations, in order. An
        ephemeral znode of another session (or a persistent one) is deleted and made again:
        set_data would leave it with its old owner, and it would vanish with that session."""
        client = self.client
        # Shallow first: a key that is also the path of another (config "a" and "a/b") is
        # made before its child.
        ops = sorted(ops, key=lambda op: op[0].count("/"))
        stats = [(key, value, client.exists_async(key)) for key, value in ops]
        # Missing parents are created in the same transaction: ZooKeeper syncs every write
        # to its log, so one multi instead of a create per parent (measured: 3x faster for
        # a service with a new name).
        puts = {key for key, value in ops if value is not None}
        wanted = sorted({a for key in puts for a in ancestors(key)
                         if a not in self._parents and a not in puts},
                        key=lambda a: a.count("/"))
        parents = [(a, client.exists_async(a)) for a in wanted]
        txn = client.transaction()
        planned: list[str] = []
        for path, pending_parent in parents:
            if pending_parent.get(timeout=self._settings.timeout) is None:
                txn.create(path, b"")
                planned.append(path)
            else:
                self._parents.add(path)
        for key, value, pending in stats:
            stat: ZnodeStat | None = pending.get(timeout=self._settings.timeout)
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
        nodes = zookeeper_watch.walk(self.client, prefix, self._settings.timeout)
        kvs = [KeyValue(path, data or b"", int(stat.ephemeralOwner))
               for path, data, stat in nodes if is_key(data, stat) and path.startswith(prefix)]
        revision = zookeeper_watch.revision_of(stat for _, _, stat in nodes)
        self.views.remember(prefix, revision, {kv.key: kv.value for kv in kvs})
        return kvs, revision

    @converted
    def watch(self, prefix: str, start_revision: int) -> ChangeStream:
        return zookeeper_watch.TreeStream(self.client, prefix, start_revision, self.views,
                                          self._settings.timeout)

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
