"""Saying why a TLS session with etcd failed. gRPC rarely says which side refused what, so
the files are checked and the first secure endpoint is asked with the standard library.
Messages name files and OpenSSL's reason, never their content."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from registrator.errors import StoreError, StoreUnavailableError
from registrator.settings import EtcdSettings

TLS_ADVICE = ("TLS handshake with etcd failed (check --etcd-cacert, --etcd-cert, --etcd-key "
              "and the server's certificate)")
# The HTTP/2 client preface and an empty SETTINGS frame: etcd answers with its own SETTINGS
# once it accepted our certificate, or with a TLS alert when it did not.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def read(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        # Files can vanish for a moment while certificates are rotated: retry.
        raise StoreUnavailableError(f"{flag} {path!r}: {exc.strerror}") from None


def _no_password() -> bytes:
    return b""


def check_tls_files(s: EtcdSettings, key_pem: bytes | None) -> None:
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


def tls_reason(s: EtcdSettings) -> str | None:
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
