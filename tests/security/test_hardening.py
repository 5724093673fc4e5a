"""Issue 8, beyond test_tls_auth.py: every TLS failure named clearly (and retried, with
renewed certificate files picked up), auth tokens that expire while the daemon is idle,
secrets kept out of logs, /healthz, /metrics and `ps`.

Covered elsewhere, not repeated here: client-certificate TLS lifecycle, wrong CA at daemon
level, http:// with TLS files or a password (exit 2), the prefix-scoped role through a full
lifecycle with lease recovery and a refused write outside the prefix, CN auth
(test_tls_auth.py); DOCKER_HOST=tcp:// (test_docker_access.py); keys built only from
validated segments, hostile labels (tests/unit/test_keys.py, tests/unit/test_properties.py).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from hardening_support import (
    PAST,
    BadServerEtcd,
    add_bad_client_material,
    key_material,
    pki_with_server,
)
from harness import free_port, wait_until
from tls_support import ROOT_PASSWORD, USER, USER_PASSWORD, TlsEtcdServer, TlsEtcdView, make_pki

from registrator import cli
from registrator.errors import StoreError, StoreUnavailableError
from registrator.settings import EtcdEndpoint, EtcdSettings
from registrator.stores.etcd import EtcdStore

LOCAL = ("127.0.0.1", None)
TOKEN_TTL = 3  # TlsEtcdServer runs etcd with --auth-token-ttl 3


@pytest.fixture(scope="module")
def hpki(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("hpki"))
    add_bad_client_material(pki)
    return pki


@pytest.fixture(scope="module")
def shared_etcd(hpki):
    """TLS with client certificates, no auth: shared by the tests that do not change it."""
    server = TlsEtcdServer(hpki).start()
    yield server
    server.stop()


@pytest.fixture
def secure_etcd(hpki):
    """One per test: the test turns auth on."""
    server = TlsEtcdServer(hpki).start()
    yield server
    server.stop()


def tls(pki, cert="client", ca="ca"):
    return ["--etcd-cacert", pki.path(f"{ca}.pem"), "--etcd-cert", pki.path(f"{cert}.pem"),
            "--etcd-key", pki.path(f"{cert}-key.pem")]


def ids(entries):
    return {v["container_id"] for v in entries.values()}


def connect_error(port, pki, ca="ca", cert=None):
    settings = EtcdSettings(
        endpoints=(EtcdEndpoint("127.0.0.1", port, secure=True),), timeout=3,
        cacert=pki.path(f"{ca}.pem"), cert=pki.path(f"{cert}.pem") if cert else None,
        key=pki.path(f"{cert}-key.pem") if cert else None)
    store = EtcdStore(settings)
    try:
        with pytest.raises((StoreError, StoreUnavailableError)) as caught:
            store.connect()
    finally:
        store.close()
    return caught.value


REJECTED = "etcd rejected the client certificate (bad certificate): "


@pytest.mark.parametrize(("cert", "kind", "says"), [
    ("expired", StoreUnavailableError, REJECTED + "--etcd-cert '{dir}/expired.pem' expired on "),
    ("other-ca", StoreUnavailableError,
     REJECTED + "is --etcd-cert '{dir}/other-ca.pem' signed by a CA etcd trusts"),
    (None, StoreUnavailableError, REJECTED + "etcd requires one (--etcd-cert, --etcd-key)"),
    ("mismatched", StoreError,
     ("--etcd-key '{dir}/mismatched-key.pem' is not the private key of --etcd-cert "
     "'{dir}/mismatched.pem'")),
    ("garbage", StoreError, "must be a PEM certificate and its PEM private key"),
    ("encrypted", StoreError, "is encrypted; gRPC needs an unencrypted key"),
])
def test_client_side_tls_problems_are_named(hpki, shared_etcd, cert, kind, says):
    error = connect_error(shared_etcd.port, hpki, cert=cert)
    message = str(error)
    assert type(error) is kind
    assert says.format(dir=hpki.dir) in message
    assert "\n" not in message
    assert error.__cause__ is None
    for secret in key_material(hpki):
        assert secret not in message


@pytest.mark.parametrize(("server", "says"), [
    ("expired", "etcd's certificate is not trusted: certificate has expired"),
    ("misnamed",
     ("etcd's certificate is not trusted: IP address mismatch, certificate is not valid for "
     "'127.0.0.1'")),
    ("other-ca", "etcd's certificate is not trusted: unable to get local issuer certificate"),
])
def test_server_certificate_problems_are_named(hpki, tmp_path, server, says):
    if server == "other-ca":  # the server is fine; the client trusts another CA
        etcd, ca, pki = TlsEtcdServer(hpki), "other-ca", hpki
    else:
        bad = ({"valid": PAST} if server == "expired"
               else {"sans": [x509.DNSName("etcd.invalid"),
                              x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]})
        pki = pki_with_server(hpki, tmp_path / "pki", **bad)
        etcd, ca = BadServerEtcd(pki), "ca"
    etcd.start()
    try:
        message = str(connect_error(etcd.port, pki, ca=ca, cert="client"))
    finally:
        etcd.stop()
    assert message.startswith("TLS handshake with etcd failed (check --etcd-cacert, "
                              "--etcd-cert, --etcd-key and the server's certificate): "
                              f"https://127.0.0.1:{etcd.port}: ")
    assert says in message


def test_renewed_client_certificate_is_picked_up_while_retrying(start_daemon, containers,
                                                                hpki, shared_etcd, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    for suffix in (".pem", "-key.pem"):
        shutil.copy(hpki.dir / f"expired{suffix}", live / f"client{suffix}")
    daemon = start_daemon("--etcd-cacert", hpki.path("ca.pem"),
                          "--etcd-cert", str(live / "client.pem"),
                          "--etcd-key", str(live / "client-key.pem"),
                          server=shared_etcd, ready=False)
    line = wait_until(lambda: daemon.logged("store failed; retrying"), timeout=20,
                      message="a retry log line")[0]
    assert "etcd rejected the client certificate" in line["error"]
    assert "expired on" in line["error"]
    assert line["level"] == "warning"  # retried at the outage pace, not given up on
    assert daemon.proc.poll() is None

    # Rotation: new files in place; the next attempt reads them.
    for suffix in (".pem", "-key.pem"):
        shutil.copy(hpki.dir / f"client{suffix}", live / f"client{suffix}.new")
        (live / f"client{suffix}.new").replace(live / f"client{suffix}")
    daemon.wait_ready()
    c = containers.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: c.id in ids(daemon.mine(containers)), message="registered after renewal")
    assert daemon.stop() == 0
    text = daemon.log_path.read_text()
    assert "Traceback" not in text
    assert all(e["event"] != "non-json line" for e in daemon.log_events()), \
        "every line is a structured event (gRPC's own stderr lines are silenced)"


def token_expired(view, key):
    """Wait for etcd to drop `view`'s idle token; proves tokens really expire in this setup
    (the daemon's, idle just as long, has too). Polls the clock, touching the token only
    once it should be gone, since each use renews it."""
    last = time.monotonic()

    def expired():
        nonlocal last
        if time.monotonic() - last < TOKEN_TTL + 1.5:
            return False
        try:
            view.client.get(key)
        except Exception as exc:  # noqa: BLE001 - the client raises gRPC's error bare
            return "invalid auth token" in str(exc)
        last = time.monotonic()
        return False

    return expired


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.read().decode()


@pytest.mark.slow
def test_expired_auth_token_is_renewed_unseen_and_sigterm_still_revokes(
        start_daemon, containers, hpki, secure_etcd, tmp_path):
    prefix = f"/sec-{uuid.uuid4().hex[:8]}"
    secure_etcd.enable_auth(prefix)
    password_file = tmp_path / "etcd-password"
    password_file.write_text(USER_PASSWORD + "\n")
    password_file.chmod(0o600)
    metrics = free_port()
    # --resync 0: nothing but Docker events makes the daemon use its token; lease
    # keepalives do not renew it. --explicit: other people's containers cause no writes.
    daemon = start_daemon(*tls(hpki), "--etcd-user", USER, "--etcd-password-file",
                          str(password_file), "--resync", "0", "--explicit",
                          "--metrics-addr", f"127.0.0.1:{metrics}",
                          prefix=prefix, server=secure_etcd)
    labels = {"registrator.enable": "true"}
    stays = containers.run(ports={"80/tcp": LOCAL}, labels=labels)
    leaves = containers.run(ports={"80/tcp": LOCAL}, labels=labels)
    wait_until(lambda: ids(daemon.mine(containers)) == {stays.id, leaves.id},
               message="both registered")

    probe = TlsEtcdView(secure_etcd.port, hpki, user=USER, password=USER_PASSWORD)
    try:
        wait_until(token_expired(probe, prefix + "/"), timeout=20, message="tokens to expire")
        leaves.stop(timeout=1)
        wait_until(lambda: ids(daemon.mine(containers)) == {stays.id},
                   message="deregistered with an expired token")
        assert daemon.logged("etcd auth token expired or stale; authenticated again")
        assert not daemon.logged("reconcile failed; retrying"), "renewal is invisible"

        page = get(metrics, "/healthz") + get(metrics, "/metrics")
        wait_until(token_expired(probe, prefix + "/"), timeout=20, message="tokens to expire")
    finally:
        probe.close()
    lease = int(daemon.host_record()["lease"], 16)
    assert daemon.stop() == 0
    assert secure_etcd.view.keys(prefix + "/") == set()  # revoked at once, not expired
    assert daemon.logged("lease revoked; this host's entries removed", lease=f"{lease:x}")
    assert not daemon.logged("could not revoke the lease; entries expire with it")

    text = daemon.log_path.read_text()
    assert daemon.logged("docker event"), "the log was captured at debug level"
    for secret in (USER_PASSWORD, ROOT_PASSWORD, "PRIVATE KEY", *key_material(hpki)):
        assert secret not in text
        assert secret not in page
    assert "registrator_" in page


def test_no_secret_in_ps(start_daemon, hpki, shared_etcd, tmp_path):
    password_file = tmp_path / "pw"
    password_file.write_text(USER_PASSWORD)
    password_file.chmod(0o600)  # a wider one is warned about (issue 21)
    daemon = start_daemon(*tls(hpki), "--etcd-user", USER, "--etcd-password-file",
                          str(password_file), server=shared_etcd, ready=False)
    try:
        wait_until(lambda: daemon.logged("starting"), message="the daemon to start")
        cmdline = Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes().decode()
    finally:
        daemon.kill()
    assert str(password_file) in cmdline
    assert USER_PASSWORD not in cmdline


@pytest.mark.parametrize("args", [["--etcd-password", USER_PASSWORD],
                                  [f"--etcd-password={USER_PASSWORD}"]])
def test_no_password_flag_exists(capsys, args):
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "No such option '--etcd-password'" in err
    assert len(err.strip().splitlines()) == 1
    assert USER_PASSWORD not in err


def test_wrong_password_is_named_and_not_shown(start_daemon, hpki, secure_etcd):
    prefix = f"/sec-{uuid.uuid4().hex[:8]}"
    secure_etcd.enable_auth(prefix)
    wrong = "wrong-pw-c0ffee"
    daemon = start_daemon(*tls(hpki), "--etcd-user", USER, prefix=prefix, server=secure_etcd,
                          ready=False, env={"REGISTRATOR_ETCD_PASSWORD": wrong})
    line = wait_until(lambda: daemon.logged("store failed; retrying"), timeout=20,
                      message="a retry log line")[0]
    assert line["error"].startswith("etcd authentication failed for --etcd-user: ")
    assert daemon.stop() == 0
    text = daemon.log_path.read_text()
    assert wrong not in text
    assert "Traceback" not in text
    assert all(json.loads(line) for line in text.splitlines())
