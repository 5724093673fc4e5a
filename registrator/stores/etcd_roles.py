"""etcd roles for access zones (SPEC §9, `config grant`): one role per app, scoped to the
app's configuration root. Kept apart from etcd.py, which holds the daemon's hot path."""

from __future__ import annotations

from typing import Any

import grpc
import pyetcd
from pyetcd import etcdrpc

from registrator.stores.etcd import EtcdStore, _converted


@_converted
def grant_prefix(store: EtcdStore, role: str, prefix: str, user: str, write: bool) -> None:
    """Create `role` unless it exists, let it read (with `write` also write) every key under
    `prefix`, and give it to `user`. Needs an etcd user allowed to manage auth (root)."""
    client = store.client
    call: dict[str, Any] = {"credentials": client.call_credentials, "metadata": client.metadata}
    stub, timeout = client.authstub, client.timeout
    try:
        stub.RoleAdd(etcdrpc.AuthRoleAddRequest(name=role), timeout, **call)
    except grpc.RpcError as exc:
        if "role name already exists" not in (exc.details() or ""):
            raise
    kind = etcdrpc.Permission.READWRITE if write else etcdrpc.Permission.READ
    permission = etcdrpc.Permission(permType=kind, key=prefix.encode(),
                                    range_end=pyetcd.utils.prefix_range_end(prefix.encode()))
    stub.RoleGrantPermission(etcdrpc.AuthRoleGrantPermissionRequest(name=role, perm=permission),
                             timeout, **call)
    stub.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user=user, role=role), timeout, **call)
