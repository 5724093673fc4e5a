"""docs/serve.md "Read-only store credentials": serve works with an etcd user whose only role
reads the prefix (TLS + password auth), so it cannot write even by mistake; and serve's own
HTTPS (--http-cert/--http-key)."""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from pathlib import Path

import pytest
from harness import new_prefix, wait_until
from serve_support import Serve, record

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))
from tls_support import ROOT_PASSWORD, TlsEtcdServer, make_pki

READER, READER_PASSWORD = "registrator-serve", "serve-pw-7c2d"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_etcd(pki, docker_client):
    server = TlsEtcdServer(pki).start()
    yield server
    server.stop()


class _Via:
    kind = "etcd"


def test_serve_with_a_read_only_etcd_role(tls_etcd, pki, consumer):
    prefix = new_prefix()
    key = f"{prefix}/services/web/w1"
    tls_etcd.view.put(key, json.dumps(record("web", "w1", 8080)))
    for args in (["user", "add", "root", f"--new-user-password={ROOT_PASSWORD}"],
                 ["role", "add", "registrator-read"],
                 ["role", "grant-permission", "registrator-read", "--prefix=true", "read",
                  f"{prefix}/"],
                 ["user", "add", READER, f"--new-user-password={READER_PASSWORD}"],
                 ["user", "grant-role", READER, "registrator-read"],
                 ["auth", "enable"]):
        tls_etcd.etcdctl(*args)
    # This etcd verifies client certificates; the user comes from the password login.
    flags = ["--etcd-endpoints", tls_etcd.endpoint, "--etcd-cacert", pki.path("ca.pem"),
             "--etcd-cert", pki.path("client.pem"), "--etcd-key", pki.path("client-key.pem"),
             "--etcd-user", READER]
    serve = Serve(consumer, _Via(), prefix, via=flags,
                  env={"REGISTRATOR_ETCD_PASSWORD": READER_PASSWORD})
    wait_until(lambda: [e["id"] for e in serve.json("/v1/services/web")] == ["w1"],
               message="the entry served with read-only credentials")
    assert READER_PASSWORD not in serve.process.log_path.read_text()


def _https(port, path, context):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_serve_over_tls(etcd, pki, consumer):
    prefix = new_prefix()
    etcd.view.put(f"{prefix}/services/web/w1", json.dumps(record("web", "w1", 8080)))
    try:
        serve = Serve(consumer, etcd, prefix, "--http-cert", pki.path("server.pem"),
                      "--http-key", pki.path("server-key.pem"), ready=False)
        context = ssl.create_default_context(cafile=pki.path("ca.pem"))
        wait_until(lambda: _https(serve.port, "/healthz", context)[0] == 200, timeout=30,
                   message="serve to answer over https")
        status, body = _https(serve.port, "/v1/services/web", context)
        assert status == 200
        assert [e["id"] for e in json.loads(body)] == ["w1"]
        untrusted = ssl.create_default_context(cafile=pki.path("other-ca.pem"))
        with pytest.raises(ssl.SSLCertVerificationError):
            _https(serve.port, "/healthz", untrusted)
    finally:
        etcd.view.delete_prefix(prefix + "/")


def test_serve_with_its_own_zookeeper_digest_user(zookeeper, consumer):
    """The daemon's znodes are "all for its user, read for anyone": serve, logged in as a
    digest user of its own, reads them and can change none of them."""
    from kazoo.client import KazooClient  # noqa: PLC0415 - ZooKeeper tests only
    from kazoo.exceptions import NoAuthError  # noqa: PLC0415
    from kazoo.security import ACL, Id, Permissions, make_digest_acl  # noqa: PLC0415

    prefix = new_prefix()
    acl = [make_digest_acl("reg", "reg-pw", all=True), ACL(Permissions.READ, Id("world", "anyone"))]
    writer = KazooClient(hosts=zookeeper.connect, auth_data=[("digest", "reg:reg-pw")],
                         default_acl=acl)
    reader = KazooClient(hosts=zookeeper.connect, auth_data=[("digest", "serve:serve-pw")])
    writer.start(timeout=10)
    reader.start(timeout=10)
    key = f"{prefix}/services/web/w1"
    try:
        writer.create(key, json.dumps(record("web", "w1", 8080)).encode(), makepath=True)
        serve = Serve(consumer, zookeeper, prefix,
                      via=["--zookeeper", zookeeper.connect, "--zookeeper-user", "serve"],
                      env={"REGISTRATOR_ZOOKEEPER_PASSWORD": "serve-pw"})
        wait_until(lambda: [e["id"] for e in serve.json("/v1/services/web")] == ["w1"],
                   message="the entry served to serve's own digest user")
        with pytest.raises(NoAuthError):
            reader.set(key, b"spoofed")
        assert "serve-pw" not in serve.process.log_path.read_text()
    finally:
        writer.delete(prefix, recursive=True)
        for client in (writer, reader):
            client.stop()
            client.close()
