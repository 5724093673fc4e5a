"""OpenPGP test keys made by the real gpg, in a throwaway GNUPGHOME (never the user's
keyring): an RSA primary key plus an encryption subkey (crypt needs one), exported
ASCII-armored, as crypt and `registrator config` read them. No gpg-agent survives."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_BATCH = ["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]


@dataclass(frozen=True)
class Keypair:
    public: str  # path of the armored public keyring
    secret: str  # path of the armored secret keyring
    fingerprint: str


def _gpg(home: str, *args: str) -> bytes:
    env = {**os.environ, "GNUPGHOME": home}
    return subprocess.run(["gpg", *args], env=env, check=True, capture_output=True,
                          timeout=60).stdout


def make_keypair(directory: Path, name: str = "test") -> Keypair:
    home = tempfile.mkdtemp(prefix="rg-test-gpg-", dir="/tmp")
    try:
        _gpg(home, *_BATCH, "--quick-gen-key", f"{name} <{name}@example.invalid>",
             "rsa2048", "default", "never")
        listing = _gpg(home, "--list-keys", "--with-colons").decode()
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        _gpg(home, *_BATCH, "--quick-add-key", fingerprint, "rsa2048", "encr", "never")
        public, secret = directory / f"{name}-pub.asc", directory / f"{name}-sec.asc"
        public.write_bytes(_gpg(home, "--armor", "--export", fingerprint))
        secret.write_bytes(_gpg(home, *_BATCH, "--armor", "--export-secret-keys",
                                fingerprint))
        secret.chmod(0o600)  # as a secret keyring should be (a wider one is warned about)
        return Keypair(str(public), str(secret), fingerprint)
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False,
                       capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


# Where crypt.py makes its throwaway homes.
HOME_PREFIX = "/tmp/registrator-gpg-"  # noqa: S108


def agents_left(prefix: str = HOME_PREFIX) -> list[str]:
    """gpg-agent processes still running for one of our throwaway homes."""
    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines()
            if "gpg-agent" in line and prefix in line and not line.startswith("Z")]
