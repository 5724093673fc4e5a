"""--zookeeper parsing and the one-store rule (SPEC §10), without a server."""

from __future__ import annotations

import pytest

from registrator.errors import ConfigError
from registrator.settings import build_config, check_one_store, zookeeper_settings


def test_hosts_chroot_and_default_port():
    s = zookeeper_settings("zk1:2181, zk2 ,[::1]:2182/reg/prod", None, None, None)
    assert (s.hosts, s.chroot) == ("zk1:2181,zk2:2181,[::1]:2182", "/reg/prod")
    assert str(s) == "zookeeper://zk1:2181,zk2:2181,[::1]:2182/reg/prod"


@pytest.mark.parametrize(("text", "words"), [
    ("", "names no server"),
    ("zk:99999", "invalid port"),
    ("zk:abc", "invalid port"),
    ("zk:2181/a/../b", "chroot"),
    ("user@zk:2181", "want HOST:PORT"),
])
def test_bad_connect_strings_are_one_config_error(text, words):
    with pytest.raises(ConfigError, match=words):
        zookeeper_settings(text, None, None, None)


def test_digest_auth_needs_user_and_password_never_a_password_flag(tmp_path):
    with pytest.raises(ConfigError, match="needs both"):
        zookeeper_settings("zk:2181", "alice", None, None)
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = zookeeper_settings("zk:2181", "alice", None, str(secret))
    assert (s.user, s.password) == ("alice", "s3cret")
    assert "s3cret" not in repr(s)


def test_etcd_flags_with_zookeeper_are_refused():
    check_one_store("zk:2181", etcd_endpoints="http://127.0.0.1:2379", etcd_timeout="5s")
    check_one_store(None, etcd_endpoints="http://x:1")
    with pytest.raises(ConfigError, match="--etcd-endpoints name two stores"):
        check_one_store("zk:2181", ["etcd_endpoints"], etcd_endpoints="http://127.0.0.1:2379")
    with pytest.raises(ConfigError, match="--etcd-cacert, --etcd-timeout"):
        check_one_store("zk:2181", etcd_cacert="/ca.pem", etcd_timeout="1s")


def test_run_config_takes_the_session_timeout_from_ttl():
    config = build_config(etcd_endpoints="http://127.0.0.1:2379", zookeeper="zk:2181",
                          ttl="12s", ip="127.0.0.1", hostname="h1")
    assert config.zookeeper is not None
    assert config.zookeeper.session_timeout == 12


def test_a_trailing_slash_is_no_chroot_as_zookeepers_own_clients_read_it():
    """zkCli and kazoo read "HOST:PORT/" as no chroot; it was refused with a message about
    --prefix, a flag the user had not given."""
    assert zookeeper_settings("zk:2181/", None, None, None).chroot == ""


@pytest.mark.parametrize("text", ["zk:2181//", "zk:2181/a/\ue000", "zk:2181/a\ufff5b"])
def test_a_chroot_zookeeper_would_refuse_is_one_config_error_about_the_chroot(text):
    """ZooKeeper refuses paths with private-use or U+FFF0.. characters (PathUtils): such a
    chroot passed, and the daemon then failed at its first write with a bare
    BadArgumentsError; an empty one was reported as a bad --prefix."""
    with pytest.raises(ConfigError, match="chroot") as caught:
        zookeeper_settings(text, None, None, None)
    assert "--prefix" not in str(caught.value)
