"""ls and watch with the same TLS and password-auth flags as `run` (SPEC §7), against a real
etcd with client-certificate TLS and a role limited to the prefix; a watch that reconnects
after its auth token expired authenticates again instead of being refused forever."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest
from consumer_support import cli, put_entry
from harness import Proxy, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))
from tls_support import USER, USER_PASSWORD, TlsEtcdServer, make_pki


@pytest.fixture
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_etcd(pki):
    server = TlsEtcdServer(pki).start()
    yield server
    server.stop()


def flags(pki, endpoint):
    return ["--etcd-endpoints", endpoint, "--etcd-cacert", pki.path("ca.pem"),
            "--etcd-cert", pki.path("client.pem"), "--etcd-key", pki.path("client-key.pem"),
            "--etcd-user", USER]


def test_ls_and_watch_over_tls_with_password_auth(pki, tls_etcd, consumer):
    prefix = f"/sec-{uuid.uuid4().hex[:8]}"
    tls_etcd.enable_auth(prefix)
    put_entry(tls_etcd, prefix, "web", "a", 8080)
    env = {"REGISTRATOR_ETCD_PASSWORD": USER_PASSWORD}
    out = cli("ls", "--json", "--prefix", prefix, *flags(pki, tls_etcd.endpoint), env=env)
    assert out.returncode == 0, out.stderr
    assert [e["id"] for e in json.loads(out.stdout)] == ["a"]

    proxy = Proxy(("127.0.0.1", tls_etcd.port))
    try:
        watch = consumer("watch", "--json", "--prefix", prefix, "--log-level", "info",
                         *flags(pki, f"https://127.0.0.1:{proxy.port}"), env=env)
        wait_until(lambda: watch.logged("watching the registry"), message="watching")
        proxy.cut()
        wait_until(lambda: watch.logged("store unreachable; retrying with backoff"),
                   timeout=30, message="the cut noticed")
        cut_at = time.monotonic()
        # The token (--auth-token-ttl 3) expires while the watch is cut off.
        wait_until(lambda: time.monotonic() - cut_at > 4, timeout=10, message="token expiry")
        proxy.restore()
        put_entry(tls_etcd, prefix, "web", "b", 8081)
        lines = wait_until(watch.json_lines, timeout=30, message="the change")
        assert [x["key"] for x in lines] == [f"{prefix}/services/web/b"]
    finally:
        proxy.cut()
    for secret in (USER_PASSWORD, "PRIVATE KEY"):
        assert secret not in watch.log_path.read_text()
