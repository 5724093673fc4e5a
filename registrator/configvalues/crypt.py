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
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import gnupg

from registrator.configvalues.environment import program_base_env
from registrator.configvalues.openpgp import other_message_kind, starts_public_key_encrypted
from registrator.errors import RegistratorError
from registrator.settings import warn_if_exposed

# python-gnupg logs what gpg says, and at debug level the data it handles: silenced, since
# that could be a secret value.
logging.getLogger("gnupg").disabled = True

# gpg must never wait for a passphrase: crypt's keyrings have none, and a protected key
# is an error to report, not a prompt to hang on.
_GPG_ARGS = ["--pinentry-mode", "error", "--no-auto-key-retrieve", "--no-auto-key-locate"]
# A corrupt or hostile value must not decompress into memory without bound.
MAX_PLAINTEXT_BYTES = 16 * 1024 * 1024
# etcd's default --max-request-bytes: no value crypt or `config set` wrote can be larger, so a
# larger one (another store, a hand-tuned etcd) is refused before gpg sees it.
MAX_STORED_BYTES = 1536 * 1024


class CryptError(RegistratorError):
    """A value could not be encrypted or decrypted; the message names no secret."""


def is_encrypted(value: bytes) -> bool:
    """Whether a stored value is in crypt's format (base64 of a public-key-encrypted
    OpenPGP message). Plain values that merely look like base64 are not mistaken for it:
    the decoded bytes must start with the packet an encrypted message starts with."""
    raw = _decode(value)
    return raw is not None and starts_public_key_encrypted(raw)


def foreign_form(value: bytes) -> str | None:
    """What a stored value is when it is an OpenPGP message crypt does not produce (armored,
    symmetric, signed...): a phrase for one error line; None for crypt's format and for
    anything that is no OpenPGP message. Such a value is never handed out as if it were the
    value, nor decrypted (issue 21)."""
    armor = b"-----BEGIN PGP MESSAGE-----"  # not a key block, nor clear-signed text
    if value.lstrip().startswith(armor):
        return "an ASCII-armored OpenPGP message"
    raw = _decode(value)
    if raw is None:
        return None
    if raw.lstrip().startswith(armor):
        return "base64 of an ASCII-armored OpenPGP message"
    kind = other_message_kind(raw)
    return None if kind is None else f"a {kind} OpenPGP message"


def _decode(value: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _gpg_env() -> dict[str, str]:
    """gpg and its agent need the keyring, not the command's store credentials
    (REGISTRATOR_ETCD_PASSWORD...): the same environment `config exec` gives a program."""
    return program_base_env(os.environ, ())


@contextlib.contextmanager
def _gnupg_home() -> Iterator[gnupg.GPG]:
    # Short path under /tmp: gpg-agent's socket path must fit in a sockaddr_un.
    home = tempfile.mkdtemp(prefix="registrator-gpg-", dir="/tmp")
    try:
        try:
            gpg = gnupg.GPG(gnupghome=home, env=_gpg_env())
        except OSError:
            raise CryptError("gpg (GnuPG) is not installed; encrypted values need it") from None
        yield gpg
    finally:
        # gpg starts an agent for secret-key work; it must not outlive the operation.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"],  # noqa: S603, S607 - fixed argv
                           capture_output=True, timeout=10, check=False, env=_gpg_env())
        shutil.rmtree(home, ignore_errors=True)


def _read_keyring(path: str, flag: str) -> str:
    if flag == "--secret-keyring":
        warn_if_exposed(path, flag)
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
    """crypt's format for `plaintext`, readable by every key in the public `keyring` file.
    crypt itself encrypts only to the first armor block of a concatenated keyring; every
    key is what an operator who concatenated them meant (tested against the real CLI)."""
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
    messages name. gpg's output is read as it comes and gunzipped with a bound: a small
    hostile value that inflates to gigabytes is refused, never held in memory (issue 21)."""
    if len(value) > MAX_STORED_BYTES:
        raise CryptError(f"{name}: the stored value is {len(value)} bytes, more than etcd "
                         f"allows ({MAX_STORED_BYTES}); not decrypted")
    raw = _decode(value)
    if raw is None or not is_encrypted(value):
        raise CryptError(f"{name}: the stored value is corrupt (not crypt's base64 OpenPGP "
                         "format)")
    with _gnupg_home() as gpg:
        _import(gpg, secret_keyring, "--secret-keyring", secret=True)
        return _decrypt_stream(gpg, raw, name, secret_keyring)


GPG_TIMEOUT = 30.0  # seconds for one decryption; crypt's values take milliseconds


def _decrypt_stream(gpg: gnupg.GPG, raw: bytes, name: str, keyring: str) -> bytes:
    argv = [gpg.gpgbinary, "--homedir", gpg.gnupghome, "--batch", "--no-tty", "--status-fd",
            "2", *_GPG_ARGS, "--max-output", str(MAX_PLAINTEXT_BYTES + 1), "--decrypt"]
    with tempfile.TemporaryFile() as status:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603 - fixed argv
                                stderr=status, env=_gpg_env())
        assert proc.stdin is not None  # noqa: S101 - a PIPE
        assert proc.stdout is not None  # noqa: S101 - a PIPE
        # Fed from a thread: gpg may block writing its output while we would block feeding
        # its input.
        feeder = threading.Thread(target=_feed, args=(proc.stdin, raw), daemon=True)
        feeder.start()
        # gpg that never answers (a stuck agent) must not hang `config get` or a `--watch`
        # read forever: killed after GPG_TIMEOUT, which ends its output.
        timer = threading.Timer(GPG_TIMEOUT, proc.kill)
        timer.start()
        data: bytes | None = None
        problem: str | None = "not gzip"
        killed = False
        try:
            data, problem = _gunzip_stream(proc.stdout)
        finally:
            if problem in _EARLY and proc.poll() is None:
                proc.kill()  # what it decrypted is no gzip, or too large: no need for more
                killed = True
            proc.stdout.close()
            proc.wait()
            timed_out = not timer.is_alive() and proc.returncode < 0  # killed by it
            timer.cancel()
            feeder.join()
        status.seek(0)
        text = status.read().decode("utf-8", "replace")
    if timed_out and not killed:
        raise CryptError(f"{name}: gpg did not finish decrypting within {GPG_TIMEOUT:g}s; "
                         "stopped")
    if problem == "too large":
        raise CryptError(f"{name}: the decrypted value is larger than "
                         f"{MAX_PLAINTEXT_BYTES // (1024 * 1024)} MiB; refused")
    if not killed and (proc.returncode != 0 or "DECRYPTION_OKAY" not in text):
        raise CryptError(_decrypt_problem(text, name, keyring))
    if data is None:
        raise CryptError(f"{name}: the stored value is corrupt (its decrypted content is "
                         "not gzip data)")
    return data


_EARLY = frozenset({"too large", "not gzip"})  # found before gpg finished writing


def _feed(stdin: IO[bytes], raw: bytes) -> None:
    with contextlib.suppress(OSError):  # gpg stopped reading: its status says why
        stdin.write(raw)
    with contextlib.suppress(OSError):
        stdin.close()


def _gunzip_stream(stream: IO[bytes]) -> tuple[bytes | None, str | None]:
    """(gunzipped content, None), or (None, "too large" | "not gzip" | "cut short"), the
    first two found before the end of gpg's output. Never holds more
    than MAX_PLAINTEXT_BYTES + one chunk; stops reading at the first sign of trouble."""
    out = bytearray()
    inflate = zlib.decompressobj(wbits=31)  # gzip framing only
    while chunk := stream.read(1 << 16):
        while chunk:
            if inflate.eof:  # another gzip member follows (gzip allows several)
                inflate = zlib.decompressobj(wbits=31)
            try:
                out += inflate.decompress(chunk, MAX_PLAINTEXT_BYTES + 1 - len(out))
            except zlib.error:
                return None, "not gzip"
            if len(out) > MAX_PLAINTEXT_BYTES or (inflate.unconsumed_tail
                                                   and len(out) >= MAX_PLAINTEXT_BYTES):
                return None, "too large"
            chunk = inflate.unconsumed_tail or inflate.unused_data
    if not inflate.eof:
        return None, "cut short"  # or empty: gpg's status may say why
    return bytes(out), None


# gpg-error codes (low 16 bits of an ERROR status) that mean "the key needs a passphrase":
# BAD_PASSPHRASE, NO_PIN_ENTRY, PIN_ENTRY, CANCELED, NO_PASSPHRASE.
_PASSPHRASE_ERRORS = frozenset({11, 85, 86, 99, 177})


def _statuses(text: str) -> list[list[str]]:
    return [line.split()[1:] for line in text.splitlines()
            if line.startswith("[GNUPG:] ") and len(line.split()) > 1]


def _decrypt_problem(text: str, name: str, keyring: str) -> str:
    """One line from gpg's status output (keywords and codes only, never data)."""
    statuses = _statuses(text)
    keywords = {fields[0] for fields in statuses}
    codes = {int(fields[2]) & 0xFFFF for fields in statuses
             if fields[0] == "ERROR" and len(fields) > 2 and fields[2].isdigit()}
    if keywords & {"BAD_PASSPHRASE", "NEED_PASSPHRASE", "PINENTRY_LAUNCHED"} or (
            codes & _PASSPHRASE_ERRORS):
        return (f"{name}: the key in --secret-keyring {keyring!r} is passphrase-protected; "
                "crypt's keys have none (export it without a passphrase)")
    if "NO_SECKEY" in keywords:
        return (f"{name}: --secret-keyring {keyring!r} holds no key this value was "
                "encrypted for")
    if "DECRYPTION_FAILED" in keywords:
        return f"{name}: cannot decrypt the stored value (decryption failed)"
    return f"{name}: the stored value is corrupt (gpg could not read it)"
