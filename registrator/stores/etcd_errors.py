"""etcd's and gRPC's errors as registrator's: what each failure means, in one place."""

from __future__ import annotations

import grpc

from registrator.errors import (
    LeaseLostError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)
from registrator.stores.etcd_tls import TLS_ADVICE

# What gRPC's details say when the TLS session could not be set up. With TLS 1.3 a client
# certificate etcd rejects is only noticed after the handshake, as "Unwrap failed
# (TSI_DATA_CORRUPTED)"; a certificate/key pair gRPC cannot use gives "Failed to create
# security handshaker".
_TLS_SIGNS = ("certificate_verify_failed", "handshake failed", "ssl_error", "tsi_",
              "security handshaker", "certificate", "verification check")
# What gRPC says when the endpoint speaks something other than HTTP/2 (a web server, a
# proxy, etcd's peer port with TLS off...).
_NOT_ETCD_SIGNS = ("Failed parsing HTTP/2", "http1.x server", "Received http2 header with status")


def convert(exc: BaseException) -> Exception:
    # The client raises its own exceptions bare, inside the handler of gRPC's: the detail
    # that says *why* (refused, TLS handshake) is on the gRPC error.
    cause = exc if isinstance(exc, grpc.RpcError) else exc.__context__
    if isinstance(cause, grpc.RpcError):
        return from_rpc(cause)
    return StoreUnavailableError(f"etcd unreachable: {exc}")


class TooBigError(StoreError):
    """etcd refused a transaction for its size (--max-request-bytes) or its number of
    operations (--max-txn-ops)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"etcd refused the request as too big: {detail}")
        self.detail = detail
        self.too_many_ops = "too many operations" in detail


class AuthExpiredError(StoreUnavailableError):
    """etcd no longer accepts our auth token (it expired while we were away)."""


class TlsFailedError(StoreUnavailableError):
    """The TLS session with etcd could not be set up."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{TLS_ADVICE}: {detail}")
        self.detail = detail


def from_rpc(exc: grpc.RpcError) -> Exception:  # noqa: PLR0911 - one return per kind
    code = exc.code() if hasattr(exc, "code") else None
    detail = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
    if code == grpc.StatusCode.NOT_FOUND and "lease" in detail:
        return LeaseLostError(f"etcd: {detail}")
    # Tokens expire when idle, and an admin's change to any user or role makes every older
    # token stale ("revision of auth store is old"): both need a fresh authentication.
    if (code == grpc.StatusCode.UNAUTHENTICATED
            or any(s in detail for s in ("invalid auth token", "auth store is old"))):
        return AuthExpiredError(f"etcd auth token rejected ({detail}); authenticating again")
    if any(s in detail for s in _NOT_ETCD_SIGNS):
        return StoreError(f"something answered, but not etcd's gRPC API ({detail[:160]}); "
                          "check the port of --etcd-endpoints (etcd's client port is "
                          "usually 2379)")
    if ("request is too large" in detail or "too many operations" in detail
            or "larger than max" in detail):
        return TooBigError(detail)
    if "database space exceeded" in detail or "NOSPACE" in detail:
        return StoreFullError(f"etcd is out of space (NOSPACE alarm; {detail}): deletes still "
                              "go through; writes wait until an operator compacts, "
                              "defragments and runs `etcdctl alarm disarm`")
    if "authentication failed" in detail:
        return StoreError(f"etcd authentication failed for --etcd-user: {detail}")
    if any(s in detail.lower() for s in _TLS_SIGNS):
        return TlsFailedError(detail)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        return StoreUnavailableError(f"etcd unreachable: {detail}")
    name = code.name if code is not None else "error"
    return StoreError(f"etcd refused the request ({name}): {detail}")
