"""Hostile encrypted values (issue 21): a small stored value that decompresses into hundreds
of megabytes must not be held in memory; it is refused with one line naming the key. Real
gpg makes the bombs, with the test's own key."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from config_support import Result, clean_env, config_cmd, one_line

from registrator.configvalues.crypt import MAX_STORED_BYTES, CryptError, decrypt, encrypt

BOMB_BYTES = 200_000_000
PEAK_LIMIT_KB = 160_000  # `config get` itself needs ~60 MB; a buffered bomb ~400 MB


def encrypted_zeros(public: str, size: int, *, gzip_inside: bool) -> bytes:
    """crypt's format around `size` zero bytes, compressed by gpg (bzip2): a few hundred
    bytes stored. With `gzip_inside`, gpg encrypts gzip(zeros) as crypt's plaintext."""
    home = tempfile.mkdtemp(prefix="rg-test-bomb-", dir="/tmp")
    try:
        subprocess.run(["gpg", "--homedir", home, "--batch", "--import", public],
                       check=True, capture_output=True, timeout=60)
        gzip_step = "| gzip -1 " if gzip_inside else ""
        pipeline = (f"head -c {size} /dev/zero {gzip_step}| gpg --homedir {home} --batch "
                    "--trust-model always -r alice@example.invalid --compress-algo bzip2 "
                    "--bzip2-compress-level 9 -e")
        raw = subprocess.run(["sh", "-c", pipeline], check=True, capture_output=True,
                             timeout=300).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False,
                       capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return base64.b64encode(raw)


def peak_of(command: list[str]) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """Run `command` from a fresh interpreter that reports its children's peak RSS (kB)."""
    probe = ("import resource, subprocess, sys; "
             "done = subprocess.run(sys.argv[1:], capture_output=True); "
             "sys.stderr.buffer.write(done.stderr); "
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, *command], env=clean_env(),
                          capture_output=True, timeout=300, check=False)
    code, peak = done.stdout.split()
    return subprocess.CompletedProcess(command, int(code), b"", done.stderr), int(peak)


@pytest.mark.parametrize("gzip_inside", [False, True], ids=["gpg-layer", "gzip-layer"])
def test_a_decompression_bomb_is_refused_without_being_buffered(etcd, prefix, keys,
                                                                 gzip_inside):
    alice, _ = keys
    value = encrypted_zeros(alice.public, BOMB_BYTES, gzip_inside=gzip_inside)
    assert len(value) < 300_000  # small as stored
    etcd.view.put(f"{prefix}/config/shop/defaults/blob", value.decode())
    done, peak = peak_of(config_cmd(etcd.endpoint, prefix, "get", "shop", "blob",
                                    "--secret-keyring", alice.secret))
    assert done.returncode == 1
    line = one_line(Result(done.returncode, b"", done.stderr.decode()))
    assert f"{prefix}/config/shop/defaults/blob" in line
    assert ("larger than" in line) if gzip_inside else ("not gzip data" in line), line
    assert peak < PEAK_LIMIT_KB, f"peak RSS {peak} kB"


def test_a_value_larger_than_etcd_allows_is_not_decrypted(keys):
    alice, _ = keys
    # Random bytes do not compress: stored, the value is larger than etcd's request limit
    # (another store, or an etcd with a raised --max-request-bytes, could hold it).
    value = encrypt(os.urandom(MAX_STORED_BYTES), alice.public)
    assert len(value) > MAX_STORED_BYTES
    with pytest.raises(CryptError, match=r"^/p/config/shop/defaults/big: .*more than etcd"):
        decrypt(value, alice.secret, "/p/config/shop/defaults/big")
    # Just below the limit is read as usual.
    small = encrypt(b"x" * 1000, alice.public)
    assert decrypt(small, alice.secret, "k") == b"x" * 1000
