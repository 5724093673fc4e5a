"""Access zones (SPEC §9): an etcd role scoped to `<prefix>/config/shop/` lets the shop read
its own configuration, with `registrator config` over TLS and password auth exactly as `run`
uses them, and nothing else: not another app's configuration, not the services, no
writes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env, one_line, run_config
from harness import new_prefix

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))
from tls_support import ROOT_PASSWORD, Pki, TlsEtcdServer, TlsEtcdView, make_pki

SHOP_USER = "shop-app"
SHOP_PASSWORD = "shop-pw-5b1e-s3cret"  # noqa: S105 - throwaway test credentials


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_etcd(pki, docker_client) -> Iterator[TlsEtcdServer]:
    server = TlsEtcdServer(pki).start()
    yield server
    server.stop()


def tls_flags(pki: Pki, cert: str) -> list[str]:
    return ["--etcd-cacert", pki.path("ca.pem"), "--etcd-cert", pki.path(f"{cert}.pem"),
            "--etcd-key", pki.path(f"{cert}-key.pem"), "--etcd-timeout", "3s"]


def grant_zone(server: TlsEtcdServer, prefix: str) -> None:
    """What docs/configuration.md shows: one role, read-only, on the app's configuration root."""
    for args in (["user", "add", "root", f"--new-user-password={ROOT_PASSWORD}"],
                 ["role", "add", "shop-config"],
                 ["role", "grant-permission", "shop-config", "--prefix=true", "read",
                  f"{prefix}/config/shop/"],
                 ["user", "add", SHOP_USER, f"--new-user-password={SHOP_PASSWORD}"],
                 ["user", "grant-role", SHOP_USER, "shop-config"],
                 ["auth", "enable"]):
        server.etcdctl(*args)


def test_role_reads_its_own_config_and_nothing_else(tls_etcd, pki):
    prefix = new_prefix()

    def as_root(*args: str):
        return run_config(tls_etcd.endpoint, prefix, *args, *tls_flags(pki, "root"))

    def as_shop(*args: str):
        return run_config(tls_etcd.endpoint, prefix, *args, *tls_flags(pki, "client"),
                          "--etcd-user", SHOP_USER,
                          env=clean_env(REGISTRATOR_ETCD_PASSWORD=SHOP_PASSWORD))

    # Written over TLS (client certificate) before auth is on, as an admin would.
    assert as_root("set", "shop", "db.url", "postgres://db").code == 0
    assert as_root("set", "shop", "db.url", "postgres://replica", "--host", "host7").code == 0
    assert as_root("set", "other", "db.url", "postgres://other-secret").code == 0
    tls_etcd.view.put(f"{prefix}/services/web/1", '{"name": "web"}')
    grant_zone(tls_etcd, prefix)

    own = as_shop("get", "shop", "db.url", "--host", "host7")
    assert (own.code, own.text) == (0, "postgres://replica\n"), own.err
    assert as_shop("get", "shop", "db.url", "--host", "h1").text == "postgres://db\n"
    assert as_shop("ls", "shop", "--host", "host7").code == 0

    for refused in (as_shop("get", "other", "db.url"), as_shop("ls", "other"),
                    as_shop("set", "shop", "db.url", "postgres://evil"),
                    as_shop("rm", "shop", "db.url")):
        assert refused.code == 1, refused
        assert "permission denied" in one_line(refused)
        assert "other-secret" not in refused.err
        assert SHOP_PASSWORD not in refused.err

    # The services and the hosts are out of the zone too (the test's own client, as the
    # shop's user).
    view = TlsEtcdView(tls_etcd.port, pki, user=SHOP_USER, password=SHOP_PASSWORD,
                       cert="client")
    try:
        for key in (f"{prefix}/services/", f"{prefix}/hosts/", f"{prefix}/config/other/",
                    f"{prefix}/config/"):
            with pytest.raises(Exception, match="permission denied"):
                view.client.get_prefix(key)
        assert {m.key.decode() for _, m in view.client.get_prefix(
            f"{prefix}/config/shop/")} == {f"{prefix}/config/shop/defaults/db.url",
                                           f"{prefix}/config/shop/hosts/host7/db.url"}
    finally:
        view.close()
    # Unchanged by the refused writes.
    root = TlsEtcdView(tls_etcd.port, pki, user="root", password=ROOT_PASSWORD)
    try:
        value, _ = root.client.get(f"{prefix}/config/shop/defaults/db.url")
        assert value == b"postgres://db"
    finally:
        root.close()


@pytest.fixture
def fresh_tls_etcd(pki, docker_client) -> Iterator[TlsEtcdServer]:
    """An etcd of this test's own: auth, once enabled, stays on for every later test."""
    server = TlsEtcdServer(pki).start()
    yield server
    server.stop()


def test_config_grant_creates_the_zone(fresh_tls_etcd, pki):
    server, prefix = fresh_tls_etcd, new_prefix()

    def as_root(*args: str):
        # With auth on, the client certificate's CN ("root") is the etcd user: no password.
        return run_config(server.endpoint, prefix, *args, *tls_flags(pki, "root"))

    def as_shop(*args: str):
        return run_config(server.endpoint, prefix, *args, *tls_flags(pki, "client"),
                          "--etcd-user", SHOP_USER,
                          env=clean_env(REGISTRATOR_ETCD_PASSWORD=SHOP_PASSWORD))

    as_root("set", "shop", "db.url", "postgres://db")
    as_root("set", "other", "db.url", "postgres://other")
    for args in (["user", "add", "root", f"--new-user-password={ROOT_PASSWORD}"],
                 ["user", "add", SHOP_USER, f"--new-user-password={SHOP_PASSWORD}"],
                 ["auth", "enable"]):
        server.etcdctl(*args)
    assert as_shop("get", "shop", "db.url").code == 1  # no role yet

    unknown = as_root("grant", "shop", "--user", "nobody")
    assert unknown.code == 1
    assert "user name not found" in one_line(unknown)

    granted = as_root("grant", "shop", "--user", SHOP_USER)
    assert granted.code == 0, granted.err
    assert f"read on {prefix}/config/shop/" in granted.text
    assert as_shop("get", "shop", "db.url").text == "postgres://db\n"
    assert as_shop("get", "other", "db.url").code == 1
    assert as_shop("set", "shop", "db.url", "postgres://mine").code == 1

    # Write access is a role of its own: grant never changes what a role already gives
    # (etcd merges a role's permissions, so its other users would be widened too).
    widened = as_root("grant", "shop", "--user", SHOP_USER, "--write")
    assert widened.code == 1
    assert "name another --role" in one_line(widened)
    assert as_shop("set", "shop", "db.url", "postgres://mine").code == 1
    assert as_root("grant", "shop", "--user", SHOP_USER, "--write",
                   "--role", "config-shop-rw").code == 0
    assert as_shop("set", "shop", "db.url", "postgres://mine").code == 0
    assert as_shop("get", "shop", "db.url").text == "postgres://mine\n"
    refused = as_shop("set", "other", "db.url", "postgres://evil")
    assert refused.code == 1
    assert "permission denied" in one_line(refused)
    # A user without auth rights cannot hand out roles.
    assert "permission denied" in one_line(as_shop("grant", "other", "--user", SHOP_USER))
