"""What both ZooKeeper modules share: kazoo's exceptions turned into registrator's, what
counts as a key, and the way back to a server that lost its data."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from kazoo import exceptions as kz
from kazoo.handlers.threading import KazooTimeoutError

from registrator.errors import StoreError, StoreUnavailableError

if TYPE_CHECKING:
    from kazoo.client import KazooClient
    from kazoo.protocol.states import ZnodeStat

P = ParamSpec("P")
R = TypeVar("R")

UNAVAILABLE = (kz.ConnectionLoss, kz.ConnectionClosedError, kz.SessionExpiredError,
               kz.OperationTimeoutError, kz.SessionMovedError, kz.ZookeeperStoppedError,
               kz.ConnectionDropped, KazooTimeoutError, kz.RequestTimeoutError)
# Refusals that are about this one key, not the store: the key is refused, the rest written.
KEY_REFUSED = (kz.BadArgumentsError, kz.NoChildrenForEphemeralsError, kz.MarshallingError)


def convert(exc: BaseException) -> Exception:
    if isinstance(exc, UNAVAILABLE):
        return StoreUnavailableError(f"zookeeper unreachable: {type(exc).__name__} {exc}")
    if isinstance(exc, kz.NoAuthError):
        return StoreError("zookeeper refused the request: the ACL does not allow this user "
                          "(--zookeeper-user)")
    if isinstance(exc, kz.AuthFailedError):
        return StoreError("zookeeper authentication failed for --zookeeper-user")
    return StoreError(f"zookeeper refused the request: {type(exc).__name__} {exc}")


def converted(func: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (kz.KazooException, KazooTimeoutError) as exc:
            raise convert(exc) from None

    return wrapper


def is_key(data: bytes | None, stat: ZnodeStat) -> bool:
    return bool(data) or bool(stat.ephemeralOwner)




def put_value(client: KazooClient, key: str, value: bytes, attempts: int = 5) -> None:
    """`key` as a persistent znode holding `value` (an ephemeral one of some session is made
    again: it would vanish with that session)."""
    for _ in range(attempts):
        try:
            stat = client.exists(key)
            if stat is not None and not stat.ephemeralOwner:
                client.set(key, value, version=stat.version)
                return
            if stat is not None:
                client.delete(key, version=stat.version)
            client.create(key, value, makepath=True)
        except (kz.NoNodeError, kz.NodeExistsError, kz.BadVersionError):
            continue  # changed under us: look again
        return
    raise StoreUnavailableError("zookeeper: the znode kept changing under a write")


def delete_value(client: KazooClient, key: str) -> bool:
    """Delete one key; True when it existed. A key that is also the path of others keeps its
    znode, without data (then it is no key)."""
    try:
        data, stat = client.get(key)
    except kz.NoNodeError:
        return False
    if not is_key(data, stat):
        return False
    try:
        if stat.numChildren:
            client.set(key, b"", version=stat.version)
        else:
            client.delete(key, version=stat.version)
    except (kz.NoNodeError, kz.BadVersionError):
        return False
    return True


def ancestors(key: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b']."""
    parts = key.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def op_weight(op: tuple[str, str | None]) -> int:
    return len(op[0].encode()) + len((op[1] or "").encode()) + 64


class ZxidReset:
    """A ZooKeeper server refuses a client that has seen a later transaction id (zxid) than
    its own: after a server came back with its data wiped (an empty data directory), kazoo,
    offering the old server's last zxid at every attempt, never reconnects. Once cut off for
    longer than the session timeout (the session is gone by then anyway), the next attempt
    offers zxid 0: the server expires the old session and kazoo opens a new one."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    def changed(self, client: KazooClient, suspended: bool, after: float) -> None:
        """kazoo's state listener: suspended (the connection is lost), or not; `after` is
        the session timeout plus a margin."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if suspended:
            self._timer = threading.Timer(after, self._reset, (client,))
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _reset(client: KazooClient) -> None:
        if not client.connected:
            client.last_zxid = 0
