"""OpenPGP messages crypt does not produce (issue 21 item 17): symmetric (`gpg -c`),
ASCII-armored, signed. They are recognized as OpenPGP, never shown by `ls` nor handed out
by `get`/`exec` as if they were the value; one line names the key. Real gpg makes them."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from config_support import clean_env, exec_cmd, one_line

from registrator.configvalues.crypt import encrypt, foreign_form, is_encrypted


def gpg(*args: str, stdin: bytes = b"the-plain-value") -> bytes:
    return subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", *args],
                          input=stdin, capture_output=True, check=True, timeout=120).stdout


@pytest.fixture(scope="module")
def forms(keys) -> Iterator[dict[str, bytes]]:
    """Each form as it would sit in the store."""
    alice, _ = keys
    home = tempfile.mkdtemp(prefix="rg-test-forms-", dir="/tmp")
    try:
        common = ["--homedir", home, "--trust-model", "always"]
        gpg(*common, "--import", alice.public, alice.secret, stdin=b"")
        to_alice = [*common, "-r", "alice@example.invalid"]
        symmetric = gpg(*common, "--passphrase", "pw", "-c")
        armored = gpg(*to_alice, "--armor", "-e")
        yield {
            "symmetric": base64.b64encode(symmetric),
            "armored": armored,
            "base64-armored": base64.b64encode(armored),
            "signed-compressed": base64.b64encode(gpg(*common, "--sign")),
            "signed": base64.b64encode(gpg(*common, "--compress-algo", "none", "--sign")),
        }
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False,
                       capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


KINDS = ["symmetric", "armored", "base64-armored", "signed-compressed", "signed"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_form_crypt_does_not_produce_is_refused_never_shown(kind, forms, config, etcd,
                                                             prefix, keys, tmp_path):
    alice, _ = keys
    value = forms[kind]
    key = f"{prefix}/config/shop/defaults/secret"
    etcd.view.put(key, value.decode())
    listed = config("ls", "shop")
    assert listed.code == 0
    assert "(OpenPGP, not crypt's format)" in listed.text
    ciphertext = value.decode().replace("-----BEGIN PGP MESSAGE-----", "").split()[0]
    assert ciphertext[:20] not in listed.text
    (entry,) = json.loads(config("ls", "shop", "--json").out)
    assert (entry["encrypted"], entry["value"]) == (True, None)

    got = config("get", "shop", "secret", "--secret-keyring", alice.secret)
    assert (got.code, got.out) == (1, b"")
    assert key in one_line(got)
    assert "crypt does not produce" in one_line(got)

    ran = tmp_path / "ran"
    done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", "--secret-keyring",
                                   alice.secret, program=["touch", str(ran)]),
                          env=clean_env(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 1
    assert key in done.stderr.decode()
    assert not ran.exists()


def test_crypt_s_own_format_and_plain_values_are_not_taken_for_other_forms(keys):
    alice, _ = keys
    assert foreign_form(encrypt(b"x", alice.public)) is None
    assert is_encrypted(encrypt(b"x", alice.public))
    for plain in (b"postgres://db", b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n...",
                  b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n", b""):
        assert foreign_form(plain) is None, plain
    # Random tokens that are valid base64 (API keys, passwords) stay plain values.
    taken = [t for t in (base64.b64encode(os.urandom(n)) for n in range(8, 48)
                         for _ in range(500)) if foreign_form(t) or is_encrypted(t)]
    assert taken == []
