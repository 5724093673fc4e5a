"""TLS to etcd, etcd auth with a role limited to the prefix, and secret hygiene (SPEC §7)."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from harness import wait_until
from tls_support import (
    CN_USER,
    ROOT_PASSWORD,
    USER,
    USER_PASSWORD,
    TlsEtcdServer,
    TlsEtcdView,
    make_pki,
)

LOCAL = ("127.0.0.1", None)


@pytest.fixture
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_etcd(pki):
    server = TlsEtcdServer(pki).start()
    yield server
    server.stop()


def tls_flags(pki, ca="ca", cert="client"):
    return ["--etcd-cacert", pki.path(f"{ca}.pem"), "--etcd-cert", pki.path(f"{cert}.pem"),
            "--etcd-key", pki.path(f"{cert}-key.pem")]


def ids(entries):
    return {v["container_id"] for v in entries.values()}


def test_client_certificate_tls_registers_and_deregisters(start_daemon, containers, pki,
                                                         tls_etcd):
    daemon = start_daemon(*tls_flags(pki), server=tls_etcd)
    c = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: c.id in ids(daemon.mine(containers)), message="registered over TLS")
    c.stop(timeout=1)
    wait_until(lambda: not daemon.mine(containers), message="deregistered over TLS")
    assert daemon.stop() == 0


def test_wrong_ca_is_a_clear_error_and_retried(start_daemon, pki, tls_etcd):
    daemon = start_daemon(*tls_flags(pki, ca="other-ca"), server=tls_etcd, ready=False)
    line = wait_until(lambda: daemon.logged("store failed; retrying"), timeout=20,
                      message="a retry log line")[0]
    assert line["error"].startswith("TLS handshake with etcd failed (check --etcd-cacert")
    assert daemon.proc.poll() is None  # still trying, not crashed
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log_path.read_text()


def test_http_endpoint_with_tls_files_or_password_exits_2(start_daemon, pki, tls_etcd):
    with_tls = start_daemon(*tls_flags(pki), "--etcd-endpoints", "http://127.0.0.1:1",
                            server=tls_etcd, ready=False)
    with_password = start_daemon("--etcd-user", USER, "--etcd-endpoints", "http://127.0.0.1:1",
                                 server=tls_etcd, ready=False,
                                 env={"REGISTRATOR_ETCD_PASSWORD": USER_PASSWORD})
    for daemon, flag in ((with_tls, "TLS files given"), (with_password, "--etcd-user")):
        assert daemon.proc.wait(20) == 2
        lines = daemon.log_path.read_text().splitlines()
        assert len(lines) == 1
        assert flag in lines[0]
    assert USER_PASSWORD not in with_password.log_path.read_text()


@pytest.mark.slow
def test_password_auth_with_prefix_role_full_lifecycle(start_daemon, containers, pki,
                                                       tls_etcd):
    prefix = f"/sec-{uuid.uuid4().hex[:8]}"
    tls_etcd.enable_auth(prefix)
    daemon = start_daemon(*tls_flags(pki), "--etcd-user", USER, "--ttl", "3",
                          prefix=prefix, server=tls_etcd,
                          env={"REGISTRATOR_ETCD_PASSWORD": USER_PASSWORD})
    stays = containers.run(ports={"80/tcp": LOCAL})
    leaves = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: ids(daemon.mine(containers)) == {stays.id, leaves.id},
               message="both registered with the prefix-scoped role")
    lease = int(daemon.host_record()["lease"], 16)
    started = time.monotonic()
    # Kept alive past its 3 s TTL by the keepalive.
    wait_until(lambda: time.monotonic() - started > 4 and tls_etcd.view.lease_ttl(lease) > 0,
               message="the lease alive after its TTL")
    # An admin changes a role: every token issued before is now stale.
    tls_etcd.etcdctl("role", "grant-permission", "registrator", "read", "/unrelated")
    leaves.stop(timeout=1)
    wait_until(lambda: ids(daemon.mine(containers)) == {stays.id},
               message="deregistered after authenticating again")
    # The stale token was renewed inside the store, invisibly to the daemon's retry loop.
    assert daemon.logged("etcd auth token expired or stale; authenticated again")

    # Cut off past the lease TTL and the auth token TTL: both must be renewed.
    daemon.send(signal.SIGSTOP)
    try:
        wait_until(lambda: not tls_etcd.view.keys(prefix + "/"), timeout=20,
                   message="the lease to expire")
    finally:
        daemon.send(signal.SIGCONT)
    wait_until(lambda: ids(daemon.mine(containers)) == {stays.id}, timeout=20,
               message="entries back under a new lease after re-authenticating")
    assert int(daemon.host_record()["lease"], 16) != lease

    # The role is real: the same credentials cannot write outside the prefix.
    as_user = TlsEtcdView(tls_etcd.port, pki, user=USER, password=USER_PASSWORD,
                          cert="client")
    try:
        as_user.put(prefix + "/probe", "inside")
        with pytest.raises(Exception, match=r"(?i)permission denied"):
            as_user.put("/outside-the-prefix", "x")
    finally:
        as_user.close()
    tls_etcd.view.delete(prefix + "/probe")

    assert daemon.stop() == 0  # revoking the lease needs write access to all its keys
    assert tls_etcd.view.keys(prefix + "/") == set()
    log = daemon.log_path.read_text()
    assert "lease revoked" in log
    for secret in (USER_PASSWORD, ROOT_PASSWORD, "PRIVATE KEY",
                   (pki.dir / "client-key.pem").read_text().splitlines()[1]):
        assert secret not in log


def test_client_certificate_cn_auth_without_password(start_daemon, containers, pki, tls_etcd):
    prefix = f"/sec-{uuid.uuid4().hex[:8]}"
    tls_etcd.enable_auth(prefix)
    daemon = start_daemon(*tls_flags(pki, cert="cn-client"), prefix=prefix, server=tls_etcd)
    c = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: c.id in ids(daemon.mine(containers)),
               message=f"registered as {CN_USER} by certificate CN")
    assert daemon.stop() == 0
    assert tls_etcd.view.keys(prefix + "/") == set()
