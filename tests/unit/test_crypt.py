"""crypt's value format (SPEC §9) with gpg-made keys: round trip, format detection, and
one clear error (naming no secret) for a wrong keyring or a corrupt value. Needs gpg."""

from __future__ import annotations

import base64
import gzip
import os
import random
import shutil
import subprocess

import pytest
from gpgkeys import Keypair, agents_left, make_keypair

from registrator.configvalues import values
from registrator.configvalues.crypt import CryptError, decrypt, encrypt, is_encrypted
from registrator.stores.base import KeyValue

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None and not os.environ.get("CI"),
                                reason="gpg is not installed; run scripts/setup")

SECRET = b"postgres://shop:hunter2-s3cret@db:5432/shop\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Keypair, Keypair]:
    directory = tmp_path_factory.mktemp("keys")
    return make_keypair(directory, "alice"), make_keypair(directory, "bob")


def test_round_trip(keys):
    alice, _ = keys
    value = encrypt(SECRET, alice.public)
    assert is_encrypted(value)
    assert SECRET not in value
    assert decrypt(value, alice.secret, "k") == SECRET


@pytest.mark.parametrize("plaintext", [b"", b"\x00\xff binary", "\u00e9t\u00e9".encode(),
                                       b"a: 1\nb:\n  - x\n" * 2000])
def test_round_trip_of_any_bytes(keys, plaintext):
    alice, _ = keys
    assert decrypt(encrypt(plaintext, alice.public), alice.secret, "k") == plaintext


def test_format_is_base64_of_a_binary_openpgp_message_of_gzip(keys, tmp_path):
    """Checked with gpg itself, independent of our decrypt: base64 -> binary message whose
    first packet is a public-key encrypted session key; its plaintext is gzip."""
    alice, _ = keys
    value = encrypt(SECRET, alice.public)
    raw = base64.b64decode(value, validate=True)
    assert raw[0] & 0x80
    home = tmp_path / "gpghome"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--import", alice.secret], env=env, check=True,
                       capture_output=True)
        packets = subprocess.run(["gpg", "--batch", "--list-packets"], input=raw, env=env,
                                 capture_output=True, check=False).stdout.decode()
        assert ":pubkey enc packet:" in packets.splitlines()[0] + packets
        plain = subprocess.run(["gpg", "--batch", "--decrypt"], input=raw, env=env,
                               capture_output=True, check=True).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    assert gzip.decompress(plain) == SECRET


def test_detection_is_not_fooled_by_plain_values():
    for plain in (b"", b"hello", b"postgres://db:5432/shop", b"aGVsbG8=",
                  base64.b64encode(b"plain text that happens to be base64 encoded, long"),
                  b'{"a": 1}', b"\xff\xfe"):
        assert not is_encrypted(plain), plain


def test_random_base64_tokens_are_not_taken_for_encrypted_values():
    """API tokens are often base64 of random bytes: about 2% of them start with a byte that
    could begin an OpenPGP message, none with the whole PKESK packet header."""
    rng = random.Random(14)  # noqa: S311 - reproducible test data, not a secret
    for size in (16, 24, 32, 48, 64, 300):
        for _ in range(3000):
            token = base64.b64encode(rng.randbytes(size))
            assert not is_encrypted(token), token


def test_both_packet_formats_are_detected(keys):
    """gpg writes an old-format first packet (0x85), crypt's Go OpenPGP a new-format one
    (0xc1, as in a value the real crypt CLI wrote); both are encrypted values."""
    alice, _ = keys
    ours = base64.b64decode(encrypt(SECRET, alice.public))
    assert ours[0] in (0x84, 0x85, 0x86)
    key_id = bytes.fromhex("27e9d89d7cd23b6d")
    crypts = b"\xc1\xc0\x4c\x03" + key_id + b"\x01" + bytes(300)
    assert is_encrypted(base64.b64encode(crypts))
    assert not is_encrypted(base64.b64encode(b"\xc1\xc0\x4c\x04" + key_id + b"\x01"
                                             + bytes(300)))  # unknown version


def test_tampered_and_truncated_values_are_corrupt_and_named(keys):
    alice, _ = keys
    raw = bytearray(base64.b64decode(encrypt(SECRET, alice.public)))
    truncated = base64.b64encode(bytes(raw[:40]))
    assert is_encrypted(truncated)  # still recognised: never shown as if it were plain
    raw[-30] ^= 0xFF
    for value in (truncated, base64.b64encode(bytes(raw))):
        with pytest.raises(CryptError) as err:
            decrypt(value, alice.secret, "/p/config/shop/defaults/k")
        assert str(err.value).startswith("/p/config/shop/defaults/k: ")
        assert "hunter2" not in str(err.value)


def test_wrong_secret_keyring_is_one_clear_line(keys):
    alice, bob = keys
    value = encrypt(SECRET, alice.public)
    with pytest.raises(CryptError) as err:
        decrypt(value, bob.secret, "/p/config/shop/defaults/db.url")
    message = str(err.value)
    assert "\n" not in message
    assert "/p/config/shop/defaults/db.url" in message
    assert "holds no key" in message


def test_public_keyring_given_as_secret_keyring(keys):
    alice, _ = keys
    with pytest.raises(CryptError, match="holds no secret key"):
        decrypt(encrypt(SECRET, alice.public), alice.public, "k")


def test_missing_or_junk_keyring_files(keys, tmp_path):
    alice, _ = keys
    value = encrypt(SECRET, alice.public)
    with pytest.raises(CryptError, match="No such file"):
        decrypt(value, str(tmp_path / "nope.asc"), "k")
    junk = tmp_path / "junk.asc"
    junk.write_text("not a key\n")
    with pytest.raises(CryptError, match="not an ASCII-armored"):
        decrypt(value, str(junk), "k")
    with pytest.raises(CryptError, match="not an ASCII-armored"):
        encrypt(SECRET, str(junk))


def test_a_key_without_an_encryption_subkey_is_explained(tmp_path):
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                        "--quick-gen-key", "signonly <s@example.invalid>", "rsa2048", "sign",
                        "never"], env=env, check=True, capture_output=True)
        pub = tmp_path / "signonly.asc"
        pub.write_bytes(subprocess.run(["gpg", "--armor", "--export"], env=env, check=True,
                                       capture_output=True).stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    with pytest.raises(CryptError, match="encryption subkey"):
        encrypt(SECRET, str(pub))


@pytest.mark.parametrize("corrupt", [
    b"not base64 at all!",
    base64.b64encode(b"\xc1" + b"\x00" * 40),  # looks like a message, is garbage
])
def test_corrupt_values_name_the_key(keys, corrupt):
    alice, _ = keys
    with pytest.raises(CryptError) as err:
        decrypt(corrupt, alice.secret, "/p/config/shop/defaults/k")
    assert "/p/config/shop/defaults/k" in str(err.value)
    assert "\n" not in str(err.value)


def test_encrypted_non_gzip_content_is_corrupt(keys, tmp_path):
    """A message that decrypts but whose content is not gzip (not crypt's format)."""
    alice, _ = keys
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--import", alice.public], env=env, check=True,
                       capture_output=True)
        raw = subprocess.run(["gpg", "--batch", "--trust-model", "always", "--encrypt",
                              "--recipient", alice.fingerprint], input=b"not gzip", env=env,
                             check=True, capture_output=True).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    with pytest.raises(CryptError, match=r"corrupt.*not gzip"):
        decrypt(base64.b64encode(raw), alice.secret, "k")


def test_secrets_never_in_error_messages(keys):
    alice, bob = keys
    value = encrypt(SECRET, alice.public)
    with pytest.raises(CryptError) as err:
        decrypt(value, bob.secret, "k")
    assert b"hunter2" not in str(err.value).encode()
    assert "PGP" not in str(err.value)


def test_no_gpg_agent_is_left_running(keys):
    alice, _ = keys
    decrypt(encrypt(SECRET, alice.public), alice.secret, "k")
    assert agents_left() == []


def test_missing_gpg_is_one_clear_line(keys, monkeypatch):
    alice, _ = keys
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CryptError, match=r"gpg \(GnuPG\) is not installed"):
        encrypt(SECRET, alice.public)


class _Store:
    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data

    def get(self, key):
        return None

    def get_prefix(self, prefix):
        return [KeyValue(k, v, 0) for k, v in sorted(self.data.items()) if k.startswith(prefix)]


def test_env_loader_decrypts_each_value_once(keys, monkeypatch):
    """`config exec --watch` reads every second: gpg runs only for a changed value."""
    alice, _ = keys
    store = _Store({"/p/config/shop/defaults/db.password": encrypt(SECRET, alice.public),
                    "/p/config/shop/defaults/db.url": b"postgres://db"})
    calls = []
    real = values.decrypt
    monkeypatch.setattr(values, "decrypt", lambda *a: calls.append(a) or real(*a))
    load = values.EnvLoader(store, "/p", "shop", "h1", alice.secret, "")
    expected = {"DB_PASSWORD": SECRET.decode(), "DB_URL": "postgres://db"}
    assert load() == expected
    assert load() == expected
    assert len(calls) == 1
    store.data["/p/config/shop/defaults/db.password"] = encrypt(b"new", alice.public)
    assert load()["DB_PASSWORD"] == "new"  # noqa: S105 - a test value
    assert len(calls) == 2


def test_env_loader_refuses_encrypted_values_without_a_keyring(keys):
    alice, _ = keys
    store = _Store({"/p/config/shop/defaults/k": encrypt(SECRET, alice.public)})
    with pytest.raises(CryptError, match="is encrypted: give --secret-keyring"):
        values.EnvLoader(store, "/p", "shop", "h1", None, "")()


def test_template_config_for_render(keys):
    alice, _ = keys
    store = _Store({"/p/config/shop/defaults/db.password": encrypt(SECRET, alice.public),
                    "/p/config/shop/defaults/db.url": b"postgres://db"})
    store.get = lambda key: next((kv for kv in store.get_prefix(key) if kv.key == key), None)
    config = values.TemplateConfig(store, "/p", "h1", alice.secret)
    assert config("shop", "db.url") == "postgres://db"
    assert config("shop", "nope", "dflt") == "dflt"
    assert config("shop", "nope") is None
    assert not config.decrypted
    assert config("shop", "db.password") == SECRET.decode()
    assert config.decrypted
    with pytest.raises(CryptError, match="is encrypted"):
        values.TemplateConfig(store, "/p", "h1")("shop", "db.password")
