"""Opening the ZooKeeper store's client, and telling a session the servers refuse for good
from a connection that is only down. Like zookeeper.py, allowed kazoo.

A server refuses a client that has seen a later zxid than its own ("Refusing session request
for client ... as it has seen zxid 0x.. our last zxid is 0x.."): it serves an older state than
the client read. It drops the connection without an answer, and kazoo tries the session again
forever without reporting it lost (kazoo issue #42). For a server that lost its data (started
on an empty data directory, a restored snapshot) that never ends: the daemon registers
nothing again and consumers keep a stale view. While a connection stays down, a short-lived
client without a session asks the servers for their last zxid; one below what the session has
seen means the session is refused for good, and the store starts a new one."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

import structlog
from kazoo import exceptions as kz
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from registrator.errors import StoreError
from registrator.settings import ZooKeeperSettings

log = structlog.get_logger("registrator.store")
# Down this long before asking: kazoo goes through every host of the ensemble in well under
# that (its retry delay grows to 1 s), so a single lagging follower does not count.
REFUSED_AFTER = 3.0
PROBE_EVERY = 2.0  # each probe opens and closes a session: a few, not a flood
_PROBE_SESSION = 10.0  # seconds; the probe closes its session at once


class Suspension:
    """Since when the connection of the store's client is down, and whether the servers
    refuse its session. Called from kazoo's thread (the state changes) and the store's
    callers (refused)."""

    def __init__(self, settings: ZooKeeperSettings) -> None:
        self._hosts = settings.hosts
        # The store's own credentials: a server that enforces auth answers no one else.
        self._auth = digest_auth(settings)
        self._timeout = min(settings.timeout, 2.0)
        self._since: float | None = None
        self._next_probe = 0.0
        self._lock = threading.Lock()

    def connected(self) -> None:
        self._since = None

    def suspended(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def down_for(self) -> float:
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    def refused(self, client: KazooClient) -> str | None:
        """Why the servers refuse `client`'s session for good, or None (connected, not down
        long enough to ask, asked a moment ago, or no server answers: an outage)."""
        with self._lock:
            now = time.monotonic()
            if (client.connected or self._since is None
                    or now - self._since < REFUSED_AFTER or now < self._next_probe):
                return None
            self._next_probe = now + PROBE_EVERY
        seen = int(client.last_zxid or 0)
        server = server_zxid(self._hosts, self._timeout, self._auth)
        if server is None or server >= seen:
            return None
        return (f"the zookeeper servers have lost their data: this session has seen zxid "
                f"{seen:#x}, their last is {server:#x}, so they refuse it for good")


def server_zxid(hosts: str, timeout: float, auth: list[tuple[str, str]] | None = None,
                ) -> int | None:
    """The last zxid of a server of `hosts` that takes a new session now (authenticated with
    `auth`); None when none does within `timeout`."""
    probe = KazooClient(hosts=hosts, timeout=_PROBE_SESSION, auth_data=auth,
                        connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5})
    try:
        probe.start(timeout=timeout)
        probe.exists("/")  # every reply carries the server's last zxid
        return int(probe.last_zxid)
    except (kz.KazooException, KazooTimeoutError):
        return None
    finally:
        probe.stop()
        probe.close()


def open_client(settings: ZooKeeperSettings, session_timeout: float,
                listener: Callable[[KazooClient, str], None], *, create_chroot: bool,
                ) -> KazooClient:
    """A started client with its session; `listener(client, state)` is told of every state
    change. Its chroot
    is created first when missing, unless `create_chroot` is False (read-only commands):
    then a missing one is StoreError, a wrong connect string."""
    s = settings
    auth, acl = digest_auth(s), _acl(s)
    if s.chroot:
        _chroot(s, session_timeout, acl, auth, create=create_chroot)
    client = KazooClient(hosts=s.hosts + s.chroot, timeout=session_timeout,
                         connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0},
                         auth_data=auth, default_acl=acl)
    client.add_listener(functools.partial(listener, client))
    try:
        client.start(timeout=s.timeout)
    except BaseException:
        client.stop()
        client.close()
        raise
    return client


def _acl(s: ZooKeeperSettings) -> list[ACL] | None:
    """Keys written with digest auth: all rights for that user, read for everyone (the
    consumers' access; ZooKeeper ACLs are per znode, not inherited)."""
    return ([make_digest_acl(s.user, s.password, all=True),
             ACL(Permissions.READ, Id("world", "anyone"))]
            if s.user and s.password else None)


def restore_chroot(client: KazooClient, s: ZooKeeperSettings, session_timeout: float) -> None:
    """The chroot again, when someone deleted it under a running writer (`deleteall`): every
    create under it fails with NoNodeError, which re-planning alone never mends."""
    if s.chroot and client.exists("/") is None:
        log.warning("the zookeeper chroot is gone; making it again", chroot=s.chroot)
        _chroot(s, session_timeout, _acl(s), digest_auth(s), create=True)


def digest_auth(s: ZooKeeperSettings) -> list[tuple[str, str]] | None:
    """kazoo's auth_data for the store's digest user, when one is set."""
    return [("digest", f"{s.user}:{s.password}")] if s.user and s.password else None


def _chroot(s: ZooKeeperSettings, session_timeout: float, acl: list[ACL] | None,
            auth: list[tuple[str, str]] | None, *, create: bool) -> None:
    """ZooKeeper clients do not create their chroot; everything under it would fail."""
    plain = KazooClient(hosts=s.hosts, timeout=session_timeout, auth_data=auth,
                        default_acl=acl)
    try:
        plain.start(timeout=s.timeout)
        if create:
            plain.ensure_path(s.chroot)
        elif plain.exists(s.chroot) is None:
            raise StoreError(f"no such chroot {s.chroot} on zookeeper {s.hosts} (only "
                             "`registrator run` and `config set` create it)")
    finally:
        plain.stop()
        plain.close()


def stop_in_background(client: KazooClient) -> None:
    """Stop a client given up on, without waiting for kazoo to end its retries."""
    def stop() -> None:
        try:
            client.stop()
            client.close()
        except (kz.KazooException, KazooTimeoutError):
            return  # it was going nowhere anyway

    threading.Thread(target=stop, name="zookeeper-stop", daemon=True).start()
