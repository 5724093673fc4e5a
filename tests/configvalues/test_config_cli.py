"""`registrator config set/get/ls/rm` against a real etcd v3 (SPEC §9): key layout, host
overrides, resolution with sources, stdin values, encrypted values marked and never shown,
one line and the right exit code for every refusal, nothing written outside the prefix."""

from __future__ import annotations

import base64
import json
import socket

import pytest
from config_support import clean_env, one_line, run_config
from harness import free_port

DB = "postgres://db:5432/shop"
REPLICA = "postgres://replica:5432/shop"
YAML = b"database:\n  url: postgres://db\n  pool: 5\nfeatures: [a, b]\n"


def test_set_get_with_a_host_override(config, etcd, prefix):
    assert config("set", "shop", "db.url", DB).code == 0
    assert config("set", "shop", "db.url", REPLICA, "--host", "host7").code == 0
    assert etcd.view.items(prefix + "/") == {
        f"{prefix}/config/shop/defaults/db.url": DB.encode(),
        f"{prefix}/config/shop/hosts/host7/db.url": REPLICA.encode(),
    }
    assert etcd.view.lease_of(f"{prefix}/config/shop/defaults/db.url") == 0
    on7 = config("get", "shop", "db.url", "--host", "host7")
    assert (on7.code, on7.text) == (0, REPLICA + "\n")
    elsewhere = config("get", "shop", "db.url", "--host", "host8")
    assert (elsewhere.code, elsewhere.text) == (0, DB + "\n")


def test_host_defaults_to_this_machines_hostname(config):
    me = socket.gethostname()
    config("set", "shop", "db.url", DB)
    config("set", "shop", "db.url", REPLICA, "--host", me)
    assert config("get", "shop", "db.url").text == REPLICA + "\n"
    listing = json.loads(config("ls", "shop", "--json").out)
    assert listing[0]["source"] == "host"
    assert listing[0]["host"] == me


def test_callers_default_only_where_the_store_has_nothing(config):
    config("set", "shop", "pool", "5")
    assert config("get", "shop", "pool", "--default", "9", "--host", "h").text == "5\n"
    assert config("get", "shop", "other", "--default", "9", "--host", "h").text == "9\n"
    missing = config("get", "shop", "other", "--host", "h")
    assert missing.code == 1
    assert "'other' of app 'shop' is not set" in one_line(missing)


def test_value_from_stdin_is_kept_byte_for_byte(config, etcd, prefix):
    assert config("set", "shop", "app.yaml", "-", stdin=YAML).code == 0
    assert etcd.view.items(f"{prefix}/config/shop/defaults/app.yaml") == {
        f"{prefix}/config/shop/defaults/app.yaml": YAML}
    assert config("get", "shop", "app.yaml").out == YAML
    listed = json.loads(config("ls", "shop", "--json").out)
    assert listed[0]["value"] == YAML.decode()


def test_ls_shows_resolved_values_and_where_they_came_from(config, keyfiles):
    config("set", "shop", "db.url", DB)
    config("set", "shop", "db.url", REPLICA, "--host", "host7")
    config("set", "shop", "pool", "5")
    config("set", "shop", "pool", "50", "--host", "host8")  # someone else's override
    config("set", "shop", "only.on7", "x", "--host", "host7")
    config("set", "shop", "tls/ca-file", "/etc/ca.pem")
    config("set", "shop", "password", "hunter2-s3cret", "--encrypt", "--keyring",
           keyfiles.public, "--allow-argv")
    config("set", "other", "db.url", "not-shop")
    listed = json.loads(config("ls", "shop", "--json", "--host", "host7").out)
    assert [(e["key"], e["source"], e["value"], e["encrypted"]) for e in listed] == [
        ("db.url", "host", REPLICA, False),
        ("only.on7", "host", "x", False),
        ("password", "default", None, True),
        ("pool", "default", "5", False),
        ("tls/ca-file", "default", "/etc/ca.pem", False),
    ]
    table = config("ls", "shop", "--host", "host7")
    assert table.code == 0
    lines = table.text.splitlines()
    assert lines[0].split() == ["KEY", "SOURCE", "VALUE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "host host7" in rows["db.url"]
    assert "(encrypted)" in rows["password"]
    assert "hunter2" not in table.text
    assert json.loads(config("ls", "nothing-here", "--json").out) == []
    assert config("ls", "nothing-here").text == ""


def test_rm_removes_the_default_or_one_hosts_override(config, etcd, prefix):
    config("set", "shop", "db.url", DB)
    config("set", "shop", "db.url", REPLICA, "--host", "host7")
    assert config("rm", "shop", "db.url", "--host", "host7").code == 0
    assert config("get", "shop", "db.url", "--host", "host7").text == DB + "\n"
    assert config("rm", "shop", "db.url").code == 0
    assert etcd.view.items(prefix + "/") == {}
    again = config("rm", "shop", "db.url")
    assert again.code == 1
    assert "has no default" in one_line(again)


BAD_NAMES = [
    ("app-dotdot", ["..", "k"]),
    ("app-empty", ["", "k"]),
    ("app-slash", ["a/b", "k"]),
    ("app-control", ["a\x01b", "k"]),
    ("app-too-long", ["a" * 256, "k"]),
    ("key-dotdot", ["shop", "../other/defaults/k"]),
    ("key-empty-segment", ["shop", "a//b"]),
    ("key-leading-slash", ["shop", "/a"]),
    ("key-trailing-slash", ["shop", "a/"]),
    ("key-newline", ["shop", "a\nb"]),
    ("key-segment-too-long", ["shop", "a/" + "b" * 256]),
    ("key-space", ["shop", "a b"]),
]


@pytest.mark.parametrize("names", [n for _, n in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
def test_bad_names_exit_2_with_one_line_and_write_nothing(config, etcd, prefix, names):
    before = etcd.view.all_keys()
    for command in (["set", *names, "v"], ["set", *names, "v", "--host", "h"],
                    ["get", *names], ["rm", *names]):
        result = config(*command)
        assert result.code == 2, (command, result)
        assert one_line(result).startswith("registrator: error: ")
    assert config("ls", names[0]).code == (2 if names[1] == "k" else 0)
    assert etcd.view.all_keys() - before == set()


@pytest.mark.parametrize("host", ["..", "a/b", "a\nb", ""])
def test_bad_host_names_exit_2(config, etcd, prefix, host):
    result = config("set", "shop", "k", "v", "--host", host)
    assert result.code == 2
    assert "--host" in one_line(result)
    assert etcd.view.items(prefix + "/") == {}


def test_encrypted_value_needs_a_secret_keyring(config, etcd, prefix, keys):
    alice, bob = keys
    secret = "hunter2-s3cret"  # noqa: S105 - a test value
    assert config("set", "shop", "password", secret, "--encrypt", "--keyring",
                  alice.public, "--allow-argv").code == 0
    stored = etcd.view.items(f"{prefix}/config/shop/defaults/password")
    raw = next(iter(stored.values()))
    assert secret.encode() not in raw
    base64.b64decode(raw, validate=True)  # crypt's format: base64 text
    plain = config("get", "shop", "password", "--secret-keyring", alice.secret)
    assert (plain.code, plain.text) == (0, secret + "\n")
    without = config("get", "shop", "password")
    assert without.code == 1
    assert without.out == b""
    assert "is encrypted" in one_line(without)
    wrong = config("get", "shop", "password", "--secret-keyring", bob.secret)
    assert wrong.code == 1
    assert wrong.out == b""
    assert "holds no key" in one_line(wrong)
    for result in (without, wrong):
        assert secret not in result.err
        assert "PGP" not in result.err


def test_corrupt_encrypted_value_is_one_line_naming_the_key(config, etcd, prefix, keyfiles):
    key = f"{prefix}/config/shop/defaults/password"
    config("set", "shop", "password", "hunter2-s3cret", "--encrypt", "--keyring",
           keyfiles.public, "--allow-argv")
    raw = bytearray(base64.b64decode(etcd.view.items(key)[key]))
    raw[-30] ^= 0xFF  # a flipped bit in the encrypted data
    etcd.view.put(key, base64.b64encode(bytes(raw)).decode())
    result = config("get", "shop", "password", "--secret-keyring", keyfiles.secret)
    assert result.code == 1
    assert key in one_line(result)
    assert result.out == b""


def test_encrypt_flags_go_together(config, etcd, prefix, keyfiles):
    assert config("set", "shop", "k", "v", "--encrypt").code == 2
    assert config("set", "shop", "k", "v", "--keyring", keyfiles.public).code == 2
    missing = config("set", "shop", "k", "v", "--encrypt", "--keyring", "/nonexistent.asc",
                     "--allow-argv")
    assert missing.code == 1
    assert "/nonexistent.asc" in one_line(missing)
    assert etcd.view.items(prefix + "/") == {}


def test_store_unreachable_is_one_line_exit_1(prefix):
    result = run_config(f"http://127.0.0.1:{free_port()}", prefix, "get", "shop", "k",
                        "--etcd-timeout", "1s")
    assert result.code == 1
    assert "etcd unreachable" in one_line(result)


def test_environment_never_redirects_a_write(etcd, prefix, keyfiles):
    """REGISTRATOR_HOSTNAME (meant for get/ls/exec) must not turn a `set` of the default into a
    host override, nor REGISTRATOR_KEYRING turn a plain `set` into an encrypted one."""
    env = clean_env(REGISTRATOR_HOSTNAME="host7", REGISTRATOR_KEYRING=keyfiles.public,
                    REGISTRATOR_DEFAULT="from-env")
    assert run_config(etcd.endpoint, prefix, "set", "shop", "k", "v", env=env).code == 0
    assert etcd.view.items(prefix + "/") == {f"{prefix}/config/shop/defaults/k": b"v"}
    encrypted = run_config(etcd.endpoint, prefix, "set", "shop", "s", "v", "--encrypt",
                           "--allow-argv", env=env)
    assert encrypted.code == 0, encrypted.err
    assert run_config(etcd.endpoint, prefix, "get", "shop", "nope", env=env).code == 1
    assert run_config(etcd.endpoint, prefix, "rm", "shop", "k", env=env).code == 0
    # get/ls resolve for REGISTRATOR_HOSTNAME (issue 21: REGISTRATOR_HOST is not read).
    run_config(etcd.endpoint, prefix, "set", "shop", "k", "on7", "--host", "host7")
    env = clean_env(REGISTRATOR_HOSTNAME="host7")
    assert run_config(etcd.endpoint, prefix, "get", "shop", "k", env=env).text == "on7\n"
