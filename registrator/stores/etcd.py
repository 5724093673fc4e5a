"""etcd v3 store. The only module that imports the etcd client (etcd-sdk-python, `pyetcd`)
or gRPC; their exceptions become registrator's here and nowhere else."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

# gRPC's C core prints its own unstructured lines to stderr on every failed TLS handshake;
# the daemon logs one structured line with a better reason instead. GRPC_VERBOSITY=ERROR
# (or DEBUG) in the environment brings them back. Set before grpc is first imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc
import pyetcd
import structlog
from pyetcd import etcdrpc
from pyetcd import exceptions as etcd_exc
from pyetcd.client import Endpoint, EtcdTokenCallCredentials, MultiEndpointEtcd3Client

from registrator.errors import (
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
)
from registrator.settings import EtcdSettings
from registrator.stores import etcd_watch
from registrator.stores.base import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    ChangeStream,
    KeyValue,
    batches,
)
from registrator.stores.etcd_errors import (
    AuthExpiredError,
    TlsFailedError,
    TooBigError,
    convert,
)
from registrator.stores.etcd_tls import TLS_ADVICE, check_tls_files, read, tls_reason

log = structlog.get_logger("registrator.store")
P = ParamSpec("P")
R = TypeVar("R")

# The client refuses an endpoint for `time_retry` seconds after one failure (default 300 s);
# gRPC's own reconnect backoff grows to minutes. Both are cut so recovery after an etcd
# restart takes well under a second.
_TIME_RETRY = 0.25
# Below this a transaction is not split further for size: one put goes alone instead.
_MIN_TXN_BYTES = 4096
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


_CAUGHT = (*_UNAVAILABLE, ValueError, grpc.RpcError)


def _converted(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the client's and gRPC's exceptions into registrator's, in one place. A call that
    etcd refuses because our auth token expired or went stale is repeated once, after
    authenticating again, so callers never see it (a lease revoke at SIGTERM after a quiet
    spell must not fail for it)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0] if args and isinstance(args[0], EtcdStore) else None
        for attempt in (1, 2):
            token = store.token() if store is not None else None
            try:
                return func(*args, **kwargs)
            except _CAUGHT as exc:
                error = convert(exc)
            if store is not None and isinstance(error, AuthExpiredError) and attempt == 1:
                store.reauthenticate(token)
                continue
            if store is not None and isinstance(error, TlsFailedError):
                error = store.explain_tls(error)
            if store is not None and type(error) is StoreUnavailableError:
                store.next_member()
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def _op_bytes(op: tuple[str, str | None]) -> int:
    key, value = op
    return len(key.encode()) + len((value or "").encode()) + 32  # + protobuf framing


class EtcdStore:
    def __init__(self, settings: EtcdSettings) -> None:
        self._settings = settings
        self._client: MultiEndpointEtcd3Client | None = None
        self._lock = threading.Lock()
        self._max_ops = MAX_TXN_OPS
        self._max_bytes = MAX_TXN_BYTES

    def describe(self) -> str:
        return ",".join(str(e) for e in self._settings.endpoints)

    @_converted
    def connect(self) -> None:
        self._session()

    def _session(self) -> MultiEndpointEtcd3Client:
        """The open client, connecting first if needed. Returned rather than read from
        `self._client` afterwards, which another thread may close meanwhile."""
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def _open(self) -> MultiEndpointEtcd3Client:
        creds = self._credentials()
        endpoints = [
            Endpoint(e.host, e.port, secure=e.secure, creds=creds if e.secure else None,
                     time_retry=_TIME_RETRY, opts=_GRPC_OPTIONS)
            for e in self._settings.endpoints
        ]
        s = self._settings
        try:
            # With a user, the constructor authenticates (one RPC).
            client = MultiEndpointEtcd3Client(
                endpoints=endpoints, timeout=s.timeout, user=s.user, password=s.password,
                failover=True)
        except BaseException:
            for endpoint in endpoints:
                endpoint.close()
            raise
        try:
            client.status()  # the client is lazy; prove the session works now
        except BaseException:
            client.close()
            raise
        return client

    def _credentials(self) -> grpc.ChannelCredentials | None:
        """Read at every (re)connect, so renewed certificate files are picked up."""
        s = self._settings
        if not any(e.secure for e in s.endpoints):
            return None
        ca, key, cert = (read(s.cacert, "--etcd-cacert"), read(s.key, "--etcd-key"),
                         read(s.cert, "--etcd-cert"))
        check_tls_files(s, key)
        return grpc.ssl_channel_credentials(ca, key, cert)

    def token(self) -> object:
        """An opaque handle on the auth token in use (never shown anywhere)."""
        client = self._client
        return client.metadata if client is not None else None

    def reauthenticate(self, stale: object) -> None:
        """Get a new auth token in place of `stale`, on the open client: its channels, which
        other threads may be using at this moment, stay as they are."""
        s = self._settings
        with self._lock:
            client = self._client
            if client is None or client.metadata is not stale:
                return  # not connected (the next call authenticates), or already renewed
            if not (s.user and s.password):
                raise StoreError("etcd asks for authentication: set --etcd-user and a "
                                 "password, or use a client certificate whose CN is an etcd "
                                 "user (--etcd-cert, --etcd-key)")
            request = etcdrpc.AuthenticateRequest(name=s.user, password=s.password)
            try:
                token = client.authstub.Authenticate(request, s.timeout).token
            except _CAUGHT as exc:
                raise convert(exc) from None
            client.metadata = (("token", token),)
            client.call_credentials = grpc.metadata_call_credentials(
                EtcdTokenCallCredentials(token))
        log.info("etcd auth token expired or stale; authenticated again")

    def next_member(self) -> None:
        """After a call failed for want of an answer, the next one goes to the next endpoint.
        The client alone goes back to a failed endpoint as soon as its time_retry passed
        (kept short, so one etcd is used again at once after a restart): a caller retrying
        slower than that (a keepalive every second, a watch whose backoff grew during an
        outage at start) stayed on a dead member for as long as it was down."""
        with self._lock:
            client = self._client
            if client is None or len(client.endpoints) < 2:
                return
            labels = list(client.endpoints)
            failed = client._current_endpoint_label  # noqa: SLF001 - the client's own switch
            following = labels[(labels.index(failed) + 1) % len(labels)]
            # The setter drops the stubs (and the watcher) made on the failed channel.
            client._current_endpoint_label = following  # noqa: SLF001
        log.debug("etcd endpoint failed; the next call goes to another", failed=failed,
                  next=following)

    def explain_tls(self, error: TlsFailedError) -> StoreUnavailableError:
        """gRPC's TLS errors rarely say which side refused what: ask the first secure
        endpoint directly with the standard library, which does."""
        s = self._settings
        try:
            key = read(s.key, "--etcd-key")
            check_tls_files(s, key)
        except (StoreError, StoreUnavailableError) as exc:
            return StoreUnavailableError(f"{TLS_ADVICE}: {exc}")
        reason = tls_reason(s)
        return error if reason is None else StoreUnavailableError(f"{TLS_ADVICE}: {reason}")

    @property
    def client(self) -> MultiEndpointEtcd3Client:
        return self._session()

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

    def get_many(self, keys: Sequence[str]) -> list[KeyValue]:
        out: list[KeyValue] = []
        for chunk in batches(list(dict.fromkeys(keys)), self._max_ops):
            out += self._read_many(chunk)
        return out

    def _read_many(self, keys: Sequence[str]) -> list[KeyValue]:
        """One transaction of reads; halved (and the lower op limit kept) when etcd says it
        has too many operations."""
        try:
            return self._read_txn(keys)
        except TooBigError:
            if len(keys) == 1:
                raise
            self._max_ops = max(1, len(keys) // 2)
            half = len(keys) // 2
            return self._read_many(keys[:half]) + self._read_many(keys[half:])

    @_converted
    def _read_txn(self, keys: Sequence[str]) -> list[KeyValue]:
        _, responses = self.client.transaction(
            compare=[], success=[pyetcd.transactions.Get(k) for k in keys], failure=[])
        return [KeyValue(meta.key.decode("utf-8", "replace"), value, int(meta.lease_id))
                for found in responses for value, meta in found]

    @_converted
    def get_prefix(self, prefix: str) -> list[KeyValue]:
        return [KeyValue(meta.key.decode("utf-8", "replace"), value, int(meta.lease_id))
                for value, meta in self.client.get_prefix(prefix)]

    @_converted
    def lease_ttl(self, lease: int) -> tuple[int, int]:
        info = self.client.get_lease_info(lease)
        return int(info.TTL), int(info.grantedTTL)

    def apply(self, puts: Sequence[tuple[str, str]], deletes: Sequence[str],
              lease: int) -> list[str]:
        # etcd rejects a transaction that names one key twice.
        put_map = dict(puts)
        # Deletes first, on their own: etcd takes delete-only transactions even with its
        # NOSPACE alarm raised, so containers that stop are deregistered during an alarm.
        dels = [(k, None) for k in dict.fromkeys(deletes) if k not in put_map]
        refused: list[str] = []
        for chunk in self._batches(dels):
            self._write(chunk, lease, refused)
        for chunk in self._batches(list(put_map.items())):
            self._write(chunk, lease, refused)
        return refused

    def _batches(self, ops: Sequence[tuple[str, str | None]],
                 ) -> list[Sequence[tuple[str, str | None]]]:
        return batches(ops, self._max_ops, self._max_bytes, _op_bytes)

    def _write(self, ops: Sequence[tuple[str, str | None]], lease: int,
               refused: list[str]) -> None:
        """One transaction; when etcd says it is too big, halve it (and remember the lower
        limit) until it passes or a single put is left, which is refused alone."""
        try:
            self._transaction(ops, lease)
        except TooBigError as exc:
            if len(ops) == 1:
                refused.append(ops[0][0])
                return
            if exc.too_many_ops:
                self._max_ops = max(1, len(ops) // 2)
            else:
                self._max_bytes = max(_MIN_TXN_BYTES, sum(map(_op_bytes, ops)) // 2)
            log.warning("etcd refused a transaction as too big; writing smaller ones",
                        ops=len(ops), max_ops=self._max_ops, max_bytes=self._max_bytes,
                        reason=exc.detail)
            half = len(ops) // 2
            self._write(ops[:half], lease, refused)
            self._write(ops[half:], lease, refused)

    @_converted
    def _transaction(self, ops: Sequence[tuple[str, str | None]], lease: int) -> None:
        success: list[Any] = [pyetcd.transactions.Delete(k) if v is None
                              else pyetcd.transactions.Put(k, v, lease) for k, v in ops]
        self.client.transaction(compare=[], success=success, failure=[])

    @_converted
    def put(self, key: str, value: bytes) -> None:
        self.client.put(key, value)

    @_converted
    def delete(self, key: str) -> bool:
        return bool(self.client.delete(key))

    @_converted
    def snapshot(self, prefix: str) -> tuple[list[KeyValue], int]:
        return etcd_watch.snapshot(self.client, prefix)

    @_converted
    def watch(self, prefix: str, start_revision: int) -> ChangeStream:
        return etcd_watch.EtcdChangeStream(self.client, prefix, start_revision,
                                           self._stream_error)

    def _stream_error(self, exc: BaseException) -> Exception:
        """A watch that broke: the read that follows goes to the next member at once."""
        error = convert(exc)
        if type(error) is StoreUnavailableError:
            self.next_member()
        return error

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
