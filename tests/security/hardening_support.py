"""Extra certificates for the hardening tests (expired, wrongly named, mismatched, encrypted)
and an etcd whose *server* certificate may be bad, built on tls_support's PKI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from harness import wait_until
from tls_support import Pki, TlsEtcdServer

NOW = dt.datetime.now(dt.UTC)
PAST = (NOW - dt.timedelta(days=2), NOW - dt.timedelta(days=1))
KEY_PASSPHRASE = b"key-passphrase-9b1e"


def _ca(pki: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((pki.dir / "ca-key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate((pki.dir / "ca.pem").read_bytes())


def leaf(pki: Pki, name: str, cn: str, *, valid: tuple[dt.datetime, dt.datetime] | None = None,
         sans: list[x509.GeneralName] | None = None, passphrase: bytes | None = None) -> None:
    """`<name>.pem` and `<name>-key.pem` in the PKI dir, signed by its CA."""
    ca_key, ca_cert = _ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    before, after = valid or (NOW - dt.timedelta(minutes=5), NOW + dt.timedelta(days=1))
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(before).not_valid_after(after)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                   critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    key_path = pki.dir / f"{name}-key.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption))
    key_path.chmod(0o644)
    (pki.dir / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def add_bad_client_material(pki: Pki) -> None:
    leaf(pki, "expired", "registrator-client", valid=PAST)
    leaf(pki, "encrypted", "registrator-client", passphrase=KEY_PASSPHRASE)
    shutil.copy(pki.dir / "client.pem", pki.dir / "mismatched.pem")
    shutil.copy(pki.dir / "root-key.pem", pki.dir / "mismatched-key.pem")
    shutil.copy(pki.dir / "client.pem", pki.dir / "garbage.pem")
    (pki.dir / "garbage-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                             "-----END PRIVATE KEY-----\n")


def key_material(pki: Pki) -> list[str]:
    """A line from the body of every private key in the PKI dir: none may ever be logged."""
    out = []
    for path in sorted(pki.dir.glob("*-key.pem")):
        body = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
        out += body[:1]
    return out


def pki_with_server(pki: Pki, directory: Path, *, valid: tuple[dt.datetime, dt.datetime] | None
                    = None, sans: list[x509.GeneralName] | None = None) -> Pki:
    """A copy of `pki` whose server certificate is replaced (same CA)."""
    shutil.copytree(pki.dir, directory)
    directory.chmod(0o755)
    copy = Pki(directory)
    leaf(copy, "server", "etcd", valid=valid, sans=sans if sans is not None else [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    return copy


class BadServerEtcd(TlsEtcdServer):
    """A TLS etcd whose own certificate clients may rightly refuse: ready once it logs that
    it serves, since a verifying client cannot tell."""

    def start(self) -> BadServerEtcd:
        self.container.start()
        self.port = int(self.container.get_exposed_port(2379))

        def serving() -> bool:
            out, err = self.container.get_logs()
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            return b"serving client requests" in out + err

        wait_until(serving, timeout=30, message="etcd with a bad server certificate to serve")
        return self

    def stop(self) -> None:
        self.container.stop()
