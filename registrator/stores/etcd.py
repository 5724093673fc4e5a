"""etcd v3 store. The only module that imports the etcd client (etcd-sdk-python, `pyetcd`)
or gRPC; their exceptions become registrator's here and nowhere else."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import grpc
import pyetcd
from pyetcd import exceptions as etcd_exc
from pyetcd.client import Endpoint, MultiEndpointEtcd3Client

from registrator.config import EtcdSettings
from registrator.errors import LeaseLostError, StoreError, StoreUnavailableError
from registrator.stores.base import KeyValue, batches

P = ParamSpec("P")
R = TypeVar("R")

# The client refuses an endpoint for `time_retry` seconds after one failure (default 300 s);
# gRPC's own reconnect backoff grows to minutes. Both are cut so recovery after an etcd
# restart takes well under a second.
_TIME_RETRY = 0.25
_GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # A full reconcile reads the whole prefix in one range: gRPC's 4 MiB default would cap
    # a cluster at a few thousand entries.
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]
_UNAVAILABLE = (
    etcd_exc.ConnectionFailedError,
    etcd_exc.ConnectionTimeoutError,
    etcd_exc.NoServerAvailableError,
    etcd_exc.InternalServerError,
)


def _converted(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the client's and gRPC's exceptions into registrator's, in one place."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (*_UNAVAILABLE, ValueError, grpc.RpcError) as exc:
            # The client raises its own exceptions bare, inside the handler of gRPC's:
            # the detail that says *why* (refused, TLS handshake) is on the gRPC error.
            cause = exc if isinstance(exc, grpc.RpcError) else exc.__context__
            error = (_from_rpc(cause) if isinstance(cause, grpc.RpcError)
                     else StoreUnavailableError(f"etcd unreachable: {exc}"))
            store = args[0] if args else None
            if isinstance(error, _AuthExpiredError) and isinstance(store, EtcdStore):
                store.close()  # the next call connects and authenticates again
            raise error from None

    return wrapper


class _AuthExpiredError(StoreUnavailableError):
    """etcd no longer accepts our auth token (it expired while we were away)."""


def _from_rpc(exc: grpc.RpcError) -> Exception:
    code = exc.code() if hasattr(exc, "code") else None
    detail = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
    if code == grpc.StatusCode.NOT_FOUND and "lease" in detail:
        return LeaseLostError(f"etcd: {detail}")
    # Tokens expire when idle, and an admin's change to any user or role makes every older
    # token stale ("revision of auth store is old"): both need a fresh authentication.
    if (code == grpc.StatusCode.UNAUTHENTICATED
            or any(s in detail for s in ("invalid auth token", "auth store is old"))):
        return _AuthExpiredError(f"etcd auth token rejected ({detail}); authenticating again")
    if any(s in detail for s in ("CERTIFICATE_VERIFY_FAILED", "Ssl handshake failed",
                                 "SSL_ERROR", "certificate")):
        return StoreUnavailableError(
            "TLS handshake with etcd failed (check --etcd-cacert, --etcd-cert, --etcd-key "
            f"and the server's certificate): {detail}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        return StoreUnavailableError(f"etcd unreachable: {detail}")
    name = code.name if code is not None else "error"
    return StoreError(f"etcd refused the request ({name}): {detail}")


class EtcdStore:
    def __init__(self, settings: EtcdSettings) -> None:
        self._settings = settings
        self._client: MultiEndpointEtcd3Client | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return ",".join(str(e) for e in self._settings.endpoints)

    @_converted
    def connect(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            creds = self._credentials()
            endpoints = [
                Endpoint(e.host, e.port, secure=e.secure, creds=creds if e.secure else None,
                         time_retry=_TIME_RETRY, opts=_GRPC_OPTIONS)
                for e in self._settings.endpoints
            ]
            s = self._settings
            client = MultiEndpointEtcd3Client(
                endpoints=endpoints, timeout=s.timeout, user=s.user, password=s.password,
                failover=True)
            try:
                client.status()  # the client is lazy; prove the session works now
            except BaseException:
                client.close()
                raise
            self._client = client

    def _credentials(self) -> grpc.ChannelCredentials | None:
        s = self._settings
        if not any(e.secure for e in s.endpoints):
            return None

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(read(s.cacert), read(s.key), read(s.cert))

    @property
    def client(self) -> MultiEndpointEtcd3Client:
        if self._client is None:
            self.connect()
        assert self._client is not None  # noqa: S101 - connect() sets it or raises
        return self._client

    @_converted
    def grant_lease(self, ttl: int) -> int:
        return int(self.client.lease(ttl).id)

    @_converted
    def refresh_lease(self, lease: int) -> int:
        responses = list(self.client.refresh_lease(lease))
        ttl = int(responses[-1].TTL) if responses else 0
        if ttl <= 0:
            raise LeaseLostError(f"etcd no longer knows lease {lease:x}")
        return ttl

    @_converted
    def revoke_lease(self, lease: int) -> None:
        try:
            self.client.revoke_lease(lease)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise

    @_converted
    def get(self, key: str) -> KeyValue | None:
        value, meta = self.client.get(key)
        if meta is None:
            return None
        return KeyValue(key, value, int(meta.lease_id))

    @_converted
    def get_prefix(self, prefix: str) -> list[KeyValue]:
        return [KeyValue(meta.key.decode("utf-8", "replace"), value, int(meta.lease_id))
                for value, meta in self.client.get_prefix(prefix)]

    @_converted
    def apply(self, puts: Sequence[tuple[str, str]], deletes: Sequence[str], lease: int) -> None:
        # etcd rejects a transaction that names one key twice.
        put_map = dict(puts)
        ops: list[Any] = [pyetcd.transactions.Put(k, v, lease) for k, v in put_map.items()]
        ops += [pyetcd.transactions.Delete(k) for k in dict.fromkeys(deletes) if k not in put_map]
        for chunk in batches(ops):
            self.client.transaction(compare=[], success=list(chunk), failure=[])

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
