"""etcd v3 store. The only module that imports the etcd client (etcd-sdk-python, `pyetcd`)
or gRPC; their exceptions become registrator's here and nowhere else."""

from __future__ import annotations

import functools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
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

from registrator.errors import LeaseLostError, StoreError, StoreUnavailableError
from registrator.settings import EtcdSettings
from registrator.stores import etcd_watch
from registrator.stores.base import ChangeStream, KeyValue, batches

log = structlog.get_logger("registrator.store")
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


_CAUGHT = (*_UNAVAILABLE, ValueError, grpc.RpcError)
# What gRPC's details say when the TLS session could not be set up. With TLS 1.3 a client
# certificate etcd rejects is only noticed after the handshake, as "Unwrap failed
# (TSI_DATA_CORRUPTED)"; a certificate/key pair gRPC cannot use gives "Failed to create
# security handshaker".
_TLS_SIGNS = ("certificate_verify_failed", "handshake failed", "ssl_error", "tsi_",
              "security handshaker", "certificate", "verification check")
_TLS_ADVICE = ("TLS handshake with etcd failed (check --etcd-cacert, --etcd-cert, --etcd-key "
               "and the server's certificate)")
# The HTTP/2 client preface and an empty SETTINGS frame: etcd answers with its own SETTINGS
# once it accepted our certificate, or with a TLS alert when it did not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"


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
                error = _convert(exc)
            if store is not None and isinstance(error, _AuthExpiredError) and attempt == 1:
                store.reauthenticate(token)
                continue
            if store is not None and isinstance(error, _TlsFailedError):
                error = store.explain_tls(error)
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def _convert(exc: BaseException) -> Exception:
    # The client raises its own exceptions bare, inside the handler of gRPC's: the detail
    # that says *why* (refused, TLS handshake) is on the gRPC error.
    cause = exc if isinstance(exc, grpc.RpcError) else exc.__context__
    if isinstance(cause, grpc.RpcError):
        return _from_rpc(cause)
    return StoreUnavailableError(f"etcd unreachable: {exc}")


class _AuthExpiredError(StoreUnavailableError):
    """etcd no longer accepts our auth token (it expired while we were away)."""


class _TlsFailedError(StoreUnavailableError):
    """The TLS session with etcd could not be set up."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{_TLS_ADVICE}: {detail}")
        self.detail = detail


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
    if "authentication failed" in detail:
        return StoreError(f"etcd authentication failed for --etcd-user: {detail}")
    if any(s in detail.lower() for s in _TLS_SIGNS):
        return _TlsFailedError(detail)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        return StoreUnavailableError(f"etcd unreachable: {detail}")
    name = code.name if code is not None else "error"
    return StoreError(f"etcd refused the request ({name}): {detail}")


def _read(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        # Files can vanish for a moment while certificates are rotated: retry.
        raise StoreUnavailableError(f"{flag} {path!r}: {exc.strerror}") from None


def _no_password() -> bytes:
    return b""


def _check_tls_files(s: EtcdSettings, key_pem: bytes | None) -> None:
    """gRPC says only "Failed to create security handshaker" for a CA file or a
    certificate/key pair it cannot use: check them here and say which. Messages name files
    and OpenSSL's reason, never their content."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if s.cacert:
        try:
            ctx.load_verify_locations(cafile=s.cacert)
        except (ssl.SSLError, ValueError):
            raise StoreError(f"--etcd-cacert {s.cacert!r} holds no PEM certificate") from None
        except OSError as exc:
            raise StoreUnavailableError(f"--etcd-cacert {s.cacert!r}: {exc.strerror}") from None
    if s.cert and s.key:
        if key_pem is not None and b"ENCRYPTED" in key_pem:
            raise StoreError(f"--etcd-key {s.key!r} is encrypted; gRPC needs an unencrypted key")
        try:
            ctx.load_cert_chain(s.cert, s.key, password=_no_password)
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise StoreError(f"--etcd-key {s.key!r} is not the private key of "
                                 f"--etcd-cert {s.cert!r}") from None
            why = exc.reason or "not readable as PEM"
            raise StoreError(f"--etcd-cert {s.cert!r} and --etcd-key {s.key!r} must be a PEM "
                             f"certificate and its PEM private key ({why})") from None
        except OSError as exc:
            raise StoreUnavailableError(f"--etcd-cert/--etcd-key: {exc.strerror}") from None


def _tls_reason(s: EtcdSettings) -> str | None:
    try:
        ctx = ssl.create_default_context(cafile=s.cacert)
        if s.cert and s.key:
            ctx.load_cert_chain(s.cert, s.key, password=_no_password)
        ctx.set_alpn_protocols(["h2"])
    except (OSError, ValueError):  # ssl.SSLError is an OSError; checked just before anyway
        return None
    for ep in (e for e in s.endpoints if e.secure):
        try:
            with (socket.create_connection((ep.host, ep.port), timeout=min(s.timeout, 3.0))
                  as raw, ctx.wrap_socket(raw, server_hostname=ep.host) as tls):
                tls.sendall(_H2_PREFACE)
                tls.recv(1)
        except ssl.SSLCertVerificationError as exc:
            return f"{ep}: etcd's certificate is not trusted: {exc.verify_message}"
        except ssl.SSLError as exc:
            if "ALERT" not in (exc.reason or ""):
                return f"{ep}: {exc.reason or exc}"
            alert = (exc.reason or "").split("ALERT_", 1)[-1].replace("_", " ").lower()
            return f"{ep}: etcd rejected the client certificate ({alert}): {_cert_hint(s)}"
        except OSError:
            continue  # not reachable now: nothing to learn from this one
        return None
    return None


def _cert_hint(s: EtcdSettings) -> str:
    if not s.cert:
        return "etcd requires one (--etcd-cert, --etcd-key)"
    expiry = _cert_expiry(s.cert)
    if expiry is not None and expiry < time.time():
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expiry))
        return f"--etcd-cert {s.cert!r} expired on {when}"
    return (f"is --etcd-cert {s.cert!r} signed by a CA etcd trusts (its --trusted-ca-file), "
            "and valid now?")


def _cert_expiry(path: str) -> float | None:
    """When the certificate in `path` expires (epoch seconds), if the standard library can
    tell; only used to explain a rejected client certificate."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    try:
        return ssl.cert_time_to_seconds(decode(path)["notAfter"]) if decode else None
    except (OSError, ValueError, KeyError, TypeError, ssl.SSLError):
        return None


class EtcdStore:
    def __init__(self, settings: EtcdSettings) -> None:
        self._settings = settings
        self._client: MultiEndpointEtcd3Client | None = None
        self._lock = threading.Lock()

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
        ca, key, cert = (_read(s.cacert, "--etcd-cacert"), _read(s.key, "--etcd-key"),
                         _read(s.cert, "--etcd-cert"))
        _check_tls_files(s, key)
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
                raise _convert(exc) from None
            client.metadata = (("token", token),)
            client.call_credentials = grpc.metadata_call_credentials(
                EtcdTokenCallCredentials(token))
        log.info("etcd auth token expired or stale; authenticated again")

    def explain_tls(self, error: _TlsFailedError) -> StoreUnavailableError:
        """gRPC's TLS errors rarely say which side refused what: ask the first secure
        endpoint directly with the standard library, which does."""
        s = self._settings
        try:
            key = _read(s.key, "--etcd-key")
            _check_tls_files(s, key)
        except (StoreError, StoreUnavailableError) as exc:
            return StoreUnavailableError(f"{_TLS_ADVICE}: {exc}")
        reason = _tls_reason(s)
        return error if reason is None else StoreUnavailableError(f"{_TLS_ADVICE}: {reason}")

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

    @_converted
    def snapshot(self, prefix: str) -> tuple[list[KeyValue], int]:
        return etcd_watch.snapshot(self.client, prefix)

    @_converted
    def watch(self, prefix: str, start_revision: int) -> ChangeStream:
        return etcd_watch.EtcdChangeStream(self.client, prefix, start_revision, _convert)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
