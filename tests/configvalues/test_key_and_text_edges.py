"""Issue 21 item 18: a passphrase-protected secret key gets its own message (crypt's keys
have none), not "decryption failed"; and `config()` in a template refuses a value that is
not UTF-8 text with one line naming the key, instead of turning bytes into U+FFFD. Real gpg,
real etcd, render as a real process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from config_support import clean_env, one_line


@pytest.fixture(scope="module")
def protected_keys(tmp_path_factory) -> tuple[str, str]:
    """(public, secret) armored keyrings of a key whose secret part has a passphrase."""
    directory = tmp_path_factory.mktemp("protected")
    home = tempfile.mkdtemp(prefix="rg-test-pp-", dir="/tmp")
    batch = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback",
             "--passphrase", "a-passphrase"]
    try:
        def gpg(*args: str) -> bytes:
            return subprocess.run([*batch, *args], check=True, capture_output=True,
                                  timeout=120).stdout

        gpg("--quick-gen-key", "pp <pp@example.invalid>", "rsa2048", "default", "never")
        listing = gpg("--list-keys", "--with-colons").decode()
        fpr = next(x.split(":")[9] for x in listing.splitlines() if x.startswith("fpr:"))
        gpg("--quick-add-key", fpr, "rsa2048", "encr", "never")
        public, secret = directory / "pp-pub.asc", directory / "pp-sec.asc"
        public.write_bytes(gpg("--armor", "--export", fpr))
        secret.write_bytes(gpg("--armor", "--export-secret-keys", fpr))
        secret.chmod(0o600)
        return str(public), str(secret)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False,
                       capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def test_a_passphrase_protected_key_is_named_as_such(config, prefix, protected_keys):
    public, secret = protected_keys
    assert config("set", "shop", "pw", "-", "--encrypt", "--keyring", public,
                  stdin=b"s3cret").code == 0
    got = config("get", "shop", "pw", "--secret-keyring", secret)
    assert (got.code, got.out) == (1, b"")
    line = one_line(got)
    assert f"{prefix}/config/shop/defaults/pw" in line
    assert "passphrase-protected" in line


def test_config_refuses_a_value_that_is_not_utf8(config, etcd, prefix, tmp_path: Path):
    assert config("set", "shop", "blob", "-", stdin=b"ab\xffcd").code == 0
    src, dest = tmp_path / "t.j2", tmp_path / "t.out"
    src.write_text("v={{ config('shop', 'blob') }}\n")
    done = subprocess.run([sys.executable, "-m", "registrator", "render", "--etcd-endpoints",
                           etcd.endpoint, "--prefix", prefix, "--template", str(src),
                           "--dest", str(dest), "--once"], env=clean_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert not dest.exists()
    failed = [line for line in done.stderr.splitlines() if "template failed" in line]
    assert len(failed) == 1, done.stderr
    assert f"{prefix}/config/shop/defaults/blob" in failed[0]
    assert "not UTF-8" in failed[0]
