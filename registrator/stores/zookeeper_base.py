"""What both ZooKeeper modules share: kazoo's exceptions turned into registrator's, and what
counts as a key."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from kazoo import exceptions as kz
from kazoo.handlers.threading import KazooTimeoutError

from registrator.errors import StoreError, StoreUnavailableError

if TYPE_CHECKING:
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


