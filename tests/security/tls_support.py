"""Certificates made by the tests, and an etcd that requires TLS client certificates
(optionally with auth enabled), from the same local image as the other tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from harness import ETCD_IMAGE, TEST_LABEL, EtcdView, wait_until
from pyetcd.client import Endpoint, MultiEndpointEtcd3Client
from testcontainers.core.container import DockerContainer

ROOT_PASSWORD = "root-pw-1f9c"  # noqa: S105 - throwaway test credentials
USER = "reg"
USER_PASSWORD = "reg-pw-7d2e-s3cret"  # noqa: S105
CN_USER = "reg-cn"


@dataclass
class Pki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_name(path.name + "-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    path.with_name(path.name + ".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_name(path.name + "-key.pem").chmod(0o644)  # read by etcd inside its container


def _ca(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    _write(directory / name, key, cert)
    return key, cert


def _leaf(directory: Path, name: str, cn: str, ca: tuple[ec.EllipticCurvePrivateKey,
                                                       x509.Certificate], *, server: bool) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca[1].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1)))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    usage = x509.oid.ExtendedKeyUsageOID
    builder = builder.add_extension(x509.ExtendedKeyUsage(
        [usage.SERVER_AUTH, usage.CLIENT_AUTH]), critical=False)
    _write(directory / name, key, builder.sign(ca[0], hashes.SHA256()))


def make_pki(directory: Path) -> Pki:
    directory.chmod(0o755)
    ca = _ca(directory, "ca")
    _ca(directory, "other-ca")  # trusted by nobody: the "wrong CA"
    _leaf(directory, "server", "etcd", ca, server=True)
    _leaf(directory, "root", "root", ca, server=False)
    _leaf(directory, "client", "registrator-client", ca, server=False)
    _leaf(directory, "cn-client", CN_USER, ca, server=False)
    return Pki(directory)


class TlsEtcdView(EtcdView):
    def __init__(self, port: int, pki: Pki, user: str | None = None,
                 password: str | None = None, cert: str = "root") -> None:
        creds = grpc.ssl_channel_credentials(
            (pki.dir / "ca.pem").read_bytes(), (pki.dir / f"{cert}-key.pem").read_bytes(),
            (pki.dir / f"{cert}.pem").read_bytes())
        ep = Endpoint("127.0.0.1", port, secure=True, creds=creds, time_retry=0.1)
        self.client = MultiEndpointEtcd3Client(endpoints=[ep], timeout=5, failover=True,
                                               user=user, password=password)


class TlsEtcdServer:
    """etcd on https with client-certificate verification; `enable_auth()` turns on users
    and a role that may only touch `<prefix>/`."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.container = (
            DockerContainer(ETCD_IMAGE)
            .with_command("--name node --data-dir /tmp/etcd "
                          "--listen-client-urls https://0.0.0.0:2379 "
                          "--advertise-client-urls https://127.0.0.1:2379 "
                          "--cert-file /certs/server.pem --key-file /certs/server-key.pem "
                          "--trusted-ca-file /certs/ca.pem --client-cert-auth "
                          "--auth-token simple --auth-token-ttl 3")
            .with_volume_mapping(str(pki.dir), "/certs", "ro")
            .with_kwargs(labels={TEST_LABEL: "etcd"})
        )
        self.container.ports = {"2379/tcp": ("127.0.0.1", None)}
        self.port = 0

    def start(self) -> TlsEtcdServer:
        self.container.start()
        self.port = int(self.container.get_exposed_port(2379))
        self.view = TlsEtcdView(self.port, self.pki)
        wait_until(self.view.healthy, timeout=30, message="TLS etcd to answer")
        return self

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def etcdctl(self, *args: str) -> str:
        result = self.container.exec(
            ["/usr/local/bin/etcdctl", "--endpoints", "https://127.0.0.1:2379",
             "--cacert", "/certs/ca.pem", "--cert", "/certs/root.pem",
             "--key", "/certs/root-key.pem", *args])
        output = result.output.decode()
        assert result.exit_code == 0, f"etcdctl {args}: {output}"
        return output

    def enable_auth(self, prefix: str) -> None:
        for args in (["user", "add", "root", f"--new-user-password={ROOT_PASSWORD}"],
                     ["role", "add", "registrator"],
                     ["role", "grant-permission", "registrator", "--prefix=true", "readwrite",
                      prefix + "/"],
                     ["user", "add", USER, f"--new-user-password={USER_PASSWORD}"],
                     ["user", "grant-role", USER, "registrator"],
                     ["user", "add", CN_USER, "--new-user-password=unused-pw-x"],
                     ["user", "grant-role", CN_USER, "registrator"],
                     ["auth", "enable"]):
            self.etcdctl(*args)

    def stop(self) -> None:
        self.view.close()
        self.container.stop()
