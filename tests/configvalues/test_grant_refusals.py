"""`config grant` hands out exactly what it says (issue 21): never `root`, never a role it did
not make for this app (so one app's role cannot be widened to another app's values), and
`config revoke` takes a zone back. Against an etcd with auth disabled, the zone enforces
nothing: grant says so. Real etcd, TLS and password auth."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env, one_line, run_config
from harness import EtcdServer, new_prefix

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))
from tls_support import ROOT_PASSWORD, Pki, TlsEtcdServer, make_pki

SHOP = ("shop-app", "shop-pw-1a2b")
SHOPPING = ("shopping-app", "shopping-pw-3c4d")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_flags(pki: Pki, cert: str) -> list[str]:
    return ["--etcd-cacert", pki.path("ca.pem"), "--etcd-cert", pki.path(f"{cert}.pem"),
            "--etcd-key", pki.path(f"{cert}-key.pem"), "--etcd-timeout", "3s"]


class Zone:
    """A fresh etcd (auth, once on, stays on) with root, two app users, and values for both
    apps; `root(...)` runs `registrator config ...` as root, `app(user, ...)` as a user."""

    def __init__(self, pki: Pki) -> None:
        self.pki, self.prefix = pki, new_prefix()
        self.server = TlsEtcdServer(pki).start()

    def root(self, *args: str):
        return run_config(self.server.endpoint, self.prefix, *args, *tls_flags(self.pki, "root"))

    def app(self, who: tuple[str, str], *args: str):
        return run_config(self.server.endpoint, self.prefix, *args,
                          *tls_flags(self.pki, "client"), "--etcd-user", who[0],
                          env=clean_env(REGISTRATOR_ETCD_PASSWORD=who[1]))

    def enable_auth(self) -> None:
        self.root("set", "shop", "db.url", "postgres://shop")
        self.root("set", "shopping", "db.url", "postgres://shopping-secret")
        for args in (["user", "add", "root", f"--new-user-password={ROOT_PASSWORD}"],
                     ["user", "add", SHOP[0], f"--new-user-password={SHOP[1]}"],
                     ["user", "add", SHOPPING[0], f"--new-user-password={SHOPPING[1]}"],
                     ["auth", "enable"]):
            self.server.etcdctl(*args)


@pytest.fixture
def zone(pki, docker_client) -> Iterator[Zone]:
    made = Zone(pki)
    yield made
    made.server.stop()


def test_grant_never_touches_root(zone):
    zone.enable_auth()
    for args in (["--role", "root"], ["--role", "ROOT "]):
        refused = zone.root("grant", "other", "--user", SHOP[0], *args)
        assert refused.code == 2, refused
        assert "root" in one_line(refused)
    refused = zone.root("grant", "shop", "--user", "root")
    assert refused.code == 2
    # The shop's user is no etcd root: it cannot read another app's values.
    assert zone.app(SHOP, "get", "shopping", "db.url").code == 1
    assert "root" not in zone.server.etcdctl("user", "get", SHOP[0]).split("Roles:")[1]


def test_grant_refuses_a_role_it_did_not_make_for_this_app(zone):
    zone.enable_auth()
    assert zone.root("grant", "shop", "--user", SHOP[0]).code == 0  # role config-shop
    # shopping's grant naming shop's role would let shop's user read shopping's values.
    refused = zone.root("grant", "shopping", "--user", SHOPPING[0], "--role", "config-shop")
    assert refused.code == 1, refused
    assert "config-shop" in one_line(refused)
    assert zone.app(SHOP, "get", "shopping", "db.url").code == 1
    assert zone.app(SHOP, "get", "shop", "db.url").text == "postgres://shop\n"
    # A role made by hand is not grant's to extend either.
    zone.server.etcdctl("role", "add", "ops")
    refused = zone.root("grant", "shop", "--user", SHOP[0], "--role", "ops")
    assert refused.code == 1
    assert "ops" in one_line(refused)
    assert "config" not in zone.server.etcdctl("role", "get", "ops")
    # grant again for the same app is fine (it is its own role).
    assert zone.root("grant", "shop", "--user", SHOPPING[0]).code == 0


def test_revoke_takes_the_zone_back(zone):
    zone.enable_auth()
    assert zone.root("grant", "shop", "--user", SHOP[0]).code == 0
    assert zone.root("grant", "shop", "--user", SHOPPING[0]).code == 0
    revoked = zone.root("revoke", "shop", "--user", SHOP[0])
    assert revoked.code == 0, revoked.err
    assert zone.app(SHOP, "get", "shop", "db.url").code == 1
    assert zone.app(SHOPPING, "get", "shop", "db.url").code == 0
    # Without --user: the role itself goes, from every user.
    assert zone.root("revoke", "shop").code == 0
    assert zone.app(SHOPPING, "get", "shop", "db.url").code == 1
    assert "config-shop" not in zone.server.etcdctl("role", "list")
    # Never a role grant did not make.
    zone.server.etcdctl("role", "add", "ops")
    refused = zone.root("revoke", "shop", "--role", "ops")
    assert refused.code == 1
    assert "ops" in zone.server.etcdctl("role", "list")
    assert zone.root("revoke", "shop", "--role", "root").code == 2


@pytest.fixture
def plain_etcd(docker_client) -> Iterator[EtcdServer]:
    """An etcd of the test's own, auth off (users and roles it gets stay out of the others')."""
    server = EtcdServer().start()
    yield server
    server.stop()


def test_grant_without_auth_enforces_nothing_and_says_so(plain_etcd):
    prefix = new_prefix()
    result = plain_etcd.container.exec(["/usr/local/bin/etcdctl", "user", "add", SHOP[0],
                                        f"--new-user-password={SHOP[1]}"])
    assert result.exit_code == 0, result.output

    def grant(*args: str):
        return run_config(plain_etcd.endpoint, prefix, "grant", "shop", "--user", SHOP[0], *args)

    refused = grant()
    assert refused.code == 1, refused
    assert "enforces nothing until auth is enabled" in one_line(refused)
    assert refused.out == b""
    roles = plain_etcd.container.exec(["/usr/local/bin/etcdctl", "role", "list"]).output
    assert b"config-shop" not in roles  # nothing done
    # On purpose (roles made before `etcdctl auth enable`): done, with the warning.
    allowed = grant("--allow-no-auth")
    assert allowed.code == 0, allowed.err
    assert "enforces nothing until auth is enabled" in one_line(allowed)
    assert f"read on {prefix}/config/shop/" in allowed.text


def test_grant_never_changes_what_the_role_s_other_users_may_do(zone):
    """etcd merges a role's permissions: granting read with a role that already writes left
    the new user a writer (while saying "read"), and --write with a role that only reads
    made every user of the role a writer. grant refuses both; another --role does it."""
    zone.enable_auth()
    assert zone.root("grant", "shop", "--user", SHOP[0], "--write").code == 0
    refused = zone.root("grant", "shop", "--user", SHOPPING[0])
    assert refused.code == 1, refused
    assert "config-shop" in one_line(refused)
    assert zone.app(SHOPPING, "set", "shop", "db.url", "postgres://evil").code == 1
    assert zone.app(SHOPPING, "get", "shop", "db.url").code == 1  # nothing granted
    # A read role of its own for the reader: read, and only read.
    assert zone.root("grant", "shop", "--user", SHOPPING[0], "--role", "shop-read").code == 0
    assert zone.app(SHOPPING, "get", "shop", "db.url").text == "postgres://shop\n"
    assert zone.app(SHOPPING, "set", "shop", "db.url", "postgres://evil").code == 1
    # The other way round: --write on the read role would make its readers writers.
    refused = zone.root("grant", "shop", "--user", SHOP[0], "--write", "--role", "shop-read")
    assert refused.code == 1, refused
    assert "shop-read" in one_line(refused)
    assert zone.app(SHOPPING, "set", "shop", "db.url", "postgres://evil").code == 1
    assert zone.app(SHOP, "get", "shop", "db.url").text == "postgres://shop\n"
