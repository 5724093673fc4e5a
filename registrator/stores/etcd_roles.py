"""etcd roles for access zones (SPEC §9, `config grant`/`config revoke`): one role per app,
scoped to the app's configuration root. Kept apart from etcd.py, which holds the daemon's
hot path.

grant marks the roles it makes: besides the app's range, the role gets read permission on
one key that nothing ever writes, `<app root>` + NUL + "registrator-grant" (inside the app's
range, so the mark grants nothing more). A role is grant's for an app when it has that mark
and no permission outside the app's root; any other role (one made by hand, another app's,
`root`) is refused rather than widened (issue 21)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import pyetcd
from pyetcd import etcdrpc

from registrator.errors import ConfigError, StoreError
from registrator.stores.etcd import EtcdStore, _converted

_MARK = b"\x00registrator-grant"
RESERVED = frozenset({"root"})  # etcd's superuser role and user: never granted, never revoked
_NOT_ENABLED = "authentication is not enabled"
_NOT_FOUND = "role name not found"


class ZoneRefusedError(StoreError):
    """The role exists and is not grant's own for this app."""


def check_name(what: str, name: str) -> str:
    """A role or user name grant may touch (not root, printable, not empty)."""
    if not name or any(not ch.isprintable() for ch in name):
        raise ConfigError(f"{what} {name!r} must be printable and not empty")
    if name.strip().lower() in RESERVED:
        raise ConfigError(f"{what} {name!r}: grant never touches etcd's root")
    return name


def _call(store: EtcdStore) -> tuple[Any, float, dict[str, Any]]:
    client = store.client
    return client.authstub, client.timeout, {"credentials": client.call_credentials,
                                             "metadata": client.metadata}


def _details(exc: grpc.RpcError) -> str:
    return str(exc.details() or "") if hasattr(exc, "details") else ""


@_converted
def auth_enabled(store: EtcdStore) -> bool:
    """Whether etcd enforces auth. etcd 3.4 has no AuthStatus call: an authentication
    attempt with a name no user has answers "not enabled" only when auth is off."""
    stub, timeout, call = _call(store)
    try:
        stub.Authenticate(etcdrpc.AuthenticateRequest(
            name="registrator-auth-probe", password="-"), timeout, **call)  # noqa: S106
    except grpc.RpcError as exc:
        return _NOT_ENABLED not in _details(exc)
    return True  # pragma: no cover - no user has that name


def _range(prefix: bytes) -> tuple[bytes, bytes]:
    return prefix, pyetcd.utils.prefix_range_end(prefix)


def _permissions(store: EtcdStore, role: str) -> Sequence[Any] | None:
    """The role's permissions, or None when there is no such role."""
    stub, timeout, call = _call(store)
    try:
        return list(stub.RoleGet(etcdrpc.AuthRoleGetRequest(role=role), timeout, **call).perm)
    except grpc.RpcError as exc:
        if _NOT_FOUND in _details(exc):
            return None
        raise


def _is_ours(permissions: Sequence[Any], root: bytes) -> bool:
    start, end = _range(root)
    marked = any(p.key == root + _MARK and not p.range_end for p in permissions)
    inside = all(start <= p.key < end and (not p.range_end or p.range_end <= end)
                 for p in permissions)
    return marked and inside


def _own_role(store: EtcdStore, role: str, root: str, app: str) -> Sequence[Any] | None:
    permissions = _permissions(store, role)
    if permissions is not None and not _is_ours(permissions, root.encode()):
        raise ZoneRefusedError(
            f"role {role!r} exists and was not made by `config grant` for app {app!r}; "
            "grant does not widen it: name another --role")
    return permissions


def _check_same_access(permissions: Sequence[Any], role: str, start: bytes, end: bytes,
                       kind: int) -> None:
    """etcd merges a role's permissions, and every user of the role gets them: read on a
    role that writes would leave the new user a writer while grant says "read", write on a
    role that reads would make all its readers writers. Either is refused."""
    kinds = {p.permType for p in permissions if p.key == start and p.range_end == end}
    if kinds and kinds != {kind}:
        has = "read-write" if etcdrpc.Permission.READWRITE in kinds else "read"
        raise ZoneRefusedError(
            f"role {role!r} gives {has} access; grant does not change what its users may "
            "do: name another --role")


@_converted
def grant_prefix(store: EtcdStore, role: str, prefix: str, user: str, write: bool,  # noqa: PLR0913
                 app: str) -> None:
    """Create `role` unless grant made it for this app already (any other existing role is
    refused), let it read (with `write` also write) every key under `prefix`, and give it
    to `user`. Needs an etcd user allowed to manage auth (root)."""
    stub, timeout, call = _call(store)
    kind = etcdrpc.Permission.READWRITE if write else etcdrpc.Permission.READ
    start, end = _range(prefix.encode())
    existing = _own_role(store, role, prefix, app)
    if existing is not None:
        _check_same_access(existing, role, start, end, kind)
    else:
        stub.RoleAdd(etcdrpc.AuthRoleAddRequest(name=role), timeout, **call)
        mark = etcdrpc.Permission(permType=etcdrpc.Permission.READ,
                                  key=prefix.encode() + _MARK)
        stub.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(name=role, perm=mark),
                                 timeout, **call)
    permission = etcdrpc.Permission(permType=kind, key=start, range_end=end)
    stub.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(name=role, perm=permission),
                             timeout, **call)
    stub.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=user, role=role), timeout, **call)


@_converted
def revoke_prefix(store: EtcdStore, role: str, prefix: str, user: str | None,
                  app: str) -> bool:
    """Take grant's `role` for this app from `user`, or delete it (from every user) when no
    user is named. False when there is no such role."""
    stub, timeout, call = _call(store)
    if _own_role(store, role, prefix, app) is None:
        return False
    if user is None:
        stub.RoleDelete(etcdrpc.AuthRoleDeleteRequest(role=role), timeout, **call)
    else:
        stub.UserRevokeRole(etcdrpc.AuthUserRevokeRoleRequest(name=user, role=role), timeout,
                            **call)
    return True
