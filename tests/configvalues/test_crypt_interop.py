"""Interop with the REAL crypt CLI (Debian golang-github-xordataexchange-crypt), both ways
(SPEC §9). crypt speaks only etcd's v2 API and we store in v3, so the raw value is copied
between a v2 key and our v3 key, in one etcd started with --enable-v2:

- crypt writes a value (v2) -> copied into our v3 key -> `registrator config get` reads it;
- `registrator config set --encrypt` writes (v3) -> copied into a v2 key -> `crypt get`.

This is the test that rules out Sequoia (pysequoia): it cannot decrypt the first direction
("Malformed MPI: leading bit is not set"); GnuPG can."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import CRYPT, V2EtcdServer, run_config
from harness import new_prefix

# A JSON/YAML configuration file stored as one value is how crypt and viper use it.
CONFIG_FILE = (b'{"database": {"url": "postgres://shop:hunter2-s3cret@db:5432/shop"},\n'
               b' "features": ["a", "b"], "note": "caf\xc3\xa9"}\n')

# In CI a missing crypt CLI is a broken setup (scripts/setup installs it), not a skip.
pytestmark = pytest.mark.skipif(
    shutil.which(CRYPT) is None and not os.environ.get("CI"),
    reason=f"{CRYPT} not installed (apt-get install golang-github-xordataexchange-crypt)")


@pytest.fixture(scope="module")
def v2etcd(docker_client) -> Iterator[V2EtcdServer]:
    server = V2EtcdServer().start()
    yield server
    server.stop()


def test_crypt_cli_value_read_by_config_get(v2etcd, keys, tmp_path):
    alice, _ = keys
    source = tmp_path / "config.json"
    source.write_bytes(CONFIG_FILE)
    written = v2etcd.crypt("set", "-keyring", alice.public, "/shop/config", str(source))
    assert written.returncode == 0, written.stderr
    raw = v2etcd.v2_get("/shop/config")
    assert raw is not None
    assert b"hunter2" not in raw.encode()
    prefix = new_prefix()
    v2etcd.view.put(f"{prefix}/config/shop/defaults/config.json", raw)
    try:
        listed = run_config(v2etcd.endpoint, prefix, "ls", "shop", "--json")
        assert '"encrypted": true' in listed.text
        result = run_config(v2etcd.endpoint, prefix, "get", "shop", "config.json",
                            "--secret-keyring", alice.secret)
        assert result.code == 0, result.err
        assert result.out == CONFIG_FILE
    finally:
        v2etcd.view.client.delete_prefix(prefix + "/")


def test_config_set_value_read_by_crypt_cli(v2etcd, keys):
    alice, _ = keys
    prefix = new_prefix()
    try:
        written = run_config(v2etcd.endpoint, prefix, "set", "shop", "config.json", "-",
                             "--encrypt", "--keyring", alice.public, stdin=CONFIG_FILE)
        assert written.code == 0, written.err
        stored = v2etcd.view.items(f"{prefix}/config/shop/defaults/config.json")
        raw = next(iter(stored.values())).decode()
        v2etcd.v2_put("/shop/ours", raw)
        read = v2etcd.crypt("get", "-secret-keyring", alice.secret, "/shop/ours")
        assert read.returncode == 0, read.stderr
        # crypt get prints the value followed by one newline of its own.
        assert read.stdout == CONFIG_FILE + b"\n"
    finally:
        v2etcd.view.client.delete_prefix(prefix + "/")


def test_crypt_cli_refuses_our_value_with_the_wrong_key(v2etcd, keys):
    """The other direction of the same check: the format really is keyed to the recipient."""
    alice, bob = keys
    prefix = new_prefix()
    try:
        run_config(v2etcd.endpoint, prefix, "set", "shop", "k", "value", "--encrypt",
                   "--keyring", alice.public, "--allow-argv")
        raw = next(iter(v2etcd.view.items(f"{prefix}/config/shop/").values())).decode()
        v2etcd.v2_put("/shop/wrongkey", raw)
        read = v2etcd.crypt("get", "-secret-keyring", bob.secret, "/shop/wrongkey")
        assert read.returncode != 0
        assert b"value" not in read.stdout
    finally:
        v2etcd.view.client.delete_prefix(prefix + "/")


def test_a_concatenated_keyring_every_key_for_us_first_block_for_crypt(v2etcd, keys,
                                                                        tmp_path):
    """Issue 21 item 19, what the documentation says: we encrypt to every key of a keyring
    made of several armor blocks; crypt encrypts to the first block's key only."""
    alice, bob = keys
    both = tmp_path / "both.asc"
    both.write_text(Path(alice.public).read_text() + Path(bob.public).read_text())
    prefix = new_prefix()
    try:
        assert run_config(v2etcd.endpoint, prefix, "set", "shop", "k", "-", "--encrypt",
                          "--keyring", str(both), stdin=b"for-both").code == 0
        raw = next(iter(v2etcd.view.items(f"{prefix}/config/shop/").values())).decode()
        v2etcd.v2_put("/shop/ours-both", raw)
        for secret in (alice.secret, bob.secret):
            read = v2etcd.crypt("get", "-secret-keyring", secret, "/shop/ours-both")
            assert (read.returncode, read.stdout) == (0, b"for-both\n"), read.stderr

        value = tmp_path / "value"
        value.write_bytes(b"crypt-wrote")
        assert v2etcd.crypt("set", "-keyring", str(both), "/shop/crypt-both",
                            str(value)).returncode == 0
        first = v2etcd.crypt("get", "-secret-keyring", alice.secret, "/shop/crypt-both")
        assert (first.returncode, first.stdout) == (0, b"crypt-wrote\n")
        second = v2etcd.crypt("get", "-secret-keyring", bob.secret, "/shop/crypt-both")
        assert second.returncode != 0
        assert b"crypt-wrote" not in second.stdout
    finally:
        v2etcd.view.client.delete_prefix(prefix + "/")
