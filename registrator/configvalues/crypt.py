"""crypt's value format (SPEC §9), so crypt, viper's secure remote provider and we read each
other's values: standard base64 of a binary OpenPGP public-key-encrypted message whose
plaintext is gzip(value). Keyrings are ASCII-armored OpenPGP files.

GnuPG does the OpenPGP work, through python-gnupg, in a throwaway GNUPGHOME per operation:
the user's own keyring is never read or changed, and the gpg-agent that GnuPG starts for
secret keys is stopped again. Checked against values the real crypt CLI wrote: pysequoia
(Sequoia) refuses them ("Malformed MPI: leading bit is not set": crypt's Go OpenPGP writes
the encrypted session key's MPI with a bit count of 8 x its bytes, not the exact one, and
Sequoia is strict about it); PGPy decrypts them but is unmaintained and returns crypt's
text-mode literal data as str; GnuPG reads them, and crypt reads what GnuPG writes.

Plaintext and key material never reach a log line or an exception message."""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import io
import logging
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import gnupg

from registrator.configvalues.openpgp import starts_public_key_encrypted
from registrator.errors import RegistratorError

# python-gnupg logs what gpg says, and at debug level the data it handles: silenced, since
# that could be a secret value.
logging.getLogger("gnupg").disabled = True

# gpg must never wait for a passphrase: crypt's keyrings have none, and a protected key
# is an error to report, not a prompt to hang on.
_GPG_ARGS = ["--pinentry-mode", "error", "--no-auto-key-retrieve", "--no-auto-key-locate"]
# A corrupt or hostile value must not decompress into memory without bound.
MAX_PLAINTEXT_BYTES = 64 * 1024 * 1024


class CryptError(RegistratorError):
    """A value could not be encrypted or decrypted; the message names no secret."""


def is_encrypted(value: bytes) -> bool:
    """Whether a stored value is in crypt's format (base64 of a public-key-encrypted
    OpenPGP message). Plain values that merely look like base64 are not mistaken for it:
    the decoded bytes must start with the packet an encrypted message starts with."""
    raw = _decode(value)
    return raw is not None and starts_public_key_encrypted(raw)


def _decode(value: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


@contextlib.contextmanager
def _gnupg_home() -> Iterator[gnupg.GPG]:
    # Short path under /tmp: gpg-agent's socket path must fit in a sockaddr_un.
    home = tempfile.mkdtemp(prefix="registrator-gpg-", dir="/tmp")
    try:
        try:
            gpg = gnupg.GPG(gnupghome=home)
        except OSError:
            raise CryptError("gpg (GnuPG) is not installed; encrypted values need it") from None
        yield gpg
    finally:
        # gpg starts an agent for secret-key work; it must not outlive the operation.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],  # noqa: S603, S607 - fixed argv
                           capture_output=True, timeout=10, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _read_keyring(path: str, flag: str) -> str:
    try:
        text = Path(path).read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise CryptError(f"{flag} {path!r} is not an ASCII-armored OpenPGP keyring") from None
    except OSError as exc:
        raise CryptError(f"{flag} {path!r}: {exc.strerror}") from None
    if "-----BEGIN PGP" not in text:
        raise CryptError(f"{flag} {path!r} is not an ASCII-armored OpenPGP keyring")
    return text


def _import(gpg: gnupg.GPG, path: str, flag: str, *, secret: bool) -> Sequence[str]:
    result = gpg.import_keys(_read_keyring(path, flag))
    fingerprints = list(dict.fromkeys(result.fingerprints))
    if not fingerprints:
        raise CryptError(f"{flag} {path!r} holds no OpenPGP key GnuPG can use")
    if secret and not gpg.list_keys(secret=True):
        raise CryptError(f"{flag} {path!r} holds no secret key (is it the public keyring?)")
    return fingerprints


def encrypt(plaintext: bytes, keyring: str) -> bytes:
    """crypt's format for `plaintext`, readable by every key in the public `keyring` file
    (crypt encrypts to every key of its keyring too)."""
    packed = gzip.compress(plaintext)
    with _gnupg_home() as gpg:
        recipients = _import(gpg, keyring, "--keyring", secret=False)
        # Already gzipped: a second compression layer would only cost time. The keys were
        # given by the operator in a file, not found in a web of trust: trust them.
        result = gpg.encrypt(packed, list(recipients), armor=False, always_trust=True,
                             extra_args=[*_GPG_ARGS, "--compress-algo", "none"])
    if not result.ok or not result.data:
        raise CryptError(f"--keyring {keyring!r}: encryption failed ({result.status}); "
                         "does the key have an encryption subkey?")
    return base64.b64encode(result.data)


def decrypt(value: bytes, secret_keyring: str, name: str) -> bytes:
    """The plaintext of a value in crypt's format; `name` (the store key) is what error
    messages name."""
    raw = _decode(value)
    if raw is None or not is_encrypted(value):
        raise CryptError(f"{name}: the stored value is corrupt (not crypt's base64 OpenPGP "
                         "format)")
    with _gnupg_home() as gpg:
        _import(gpg, secret_keyring, "--secret-keyring", secret=True)
        result = gpg.decrypt(raw, extra_args=_GPG_ARGS)
    if not result.ok:
        raise CryptError(_decrypt_problem(str(result.status or ""), name, secret_keyring))
    try:
        return _gunzip(result.data)
    except (OSError, EOFError, zlib.error):
        raise CryptError(f"{name}: the stored value is corrupt (its decrypted content is "
                         "not gzip data)") from None


def _gunzip(data: bytes) -> bytes:
    out = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        while chunk := stream.read(1 << 20):
            out += chunk
            if len(out) > MAX_PLAINTEXT_BYTES:
                raise OSError("too large")
    return bytes(out)


def _decrypt_problem(status: str, name: str, keyring: str) -> str:
    if "no secret key" in status:
        return (f"{name}: --secret-keyring {keyring!r} holds no key this value was "
                "encrypted for")
    if "bad passphrase" in status or "need passphrase" in status:
        return f"{name}: the key in --secret-keyring {keyring!r} is passphrase-protected"
    return f"{name}: cannot decrypt the stored value ({status or 'gpg failed'})"
