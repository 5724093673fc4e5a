"""A gpg that never answers does not hang the command that decrypts (review of issue 21): a
`config get` (or an `exec --watch` read) ends with one line after a bounded time. The real
gpg imports the key; a `gpg` first in PATH hangs only when asked to decrypt."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from config_support import clean_env, config_cmd, one_line, run_config
from gpgkeys import agents_left
from harness import wait_until

from registrator.configvalues.crypt import GPG_TIMEOUT


def hanging_gpg(tmp_path: Path) -> dict[str, str]:
    """An environment whose `gpg` hangs when asked to decrypt (the real one otherwise)."""
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    real = shutil.which("gpg")
    assert real is not None
    (wrappers / "gpg").write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path / "gpg.args"}\n'
        'for a in "$@"; do [ "$a" = --decrypt ] && exec sleep 600; done\n'
        f'exec {real} "$@"\n')
    (wrappers / "gpg").chmod(0o755)
    return clean_env(PATH=f"{wrappers}:{os.environ['PATH']}")


def test_a_gpg_that_hangs_is_stopped_with_one_line(config, etcd, prefix, keyfiles, tmp_path):
    assert config("set", "shop", "db.password", "hunter2-s3cret", "--encrypt",
                  "--keyring", keyfiles.public, "--allow-argv").code == 0
    done = run_config(etcd.endpoint, prefix, "get", "shop", "db.password",
                      "--secret-keyring", keyfiles.secret, env=hanging_gpg(tmp_path),
                      timeout=GPG_TIMEOUT + 60)
    assert done.code == 1, done
    line = one_line(done)
    assert "db.password" in line
    assert "gpg" in line
    assert "hunter2" not in line


def test_a_get_stopped_while_decrypting_leaves_no_agent(config, etcd, prefix, keyfiles,
                                                         tmp_path):
    """SIGTERM in the middle of a decryption: the throwaway GnuPG home (the secret key in
    it) and its agent go with the command, as on any other way out."""
    assert config("set", "shop", "db.password", "hunter2-s3cret", "--encrypt",
                  "--keyring", keyfiles.public, "--allow-argv").code == 0
    proc = subprocess.Popen(config_cmd(etcd.endpoint, prefix, "get", "shop", "db.password",
                                       "--secret-keyring", keyfiles.secret),
                            env=hanging_gpg(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        args = tmp_path / "gpg.args"
        wait_until(lambda: args.exists() and "--decrypt" in args.read_text(), timeout=30,
                   message="the decryption to start")
        argv = args.read_text().split()
        home = argv[argv.index("--homedir") + 1]  # the command's own GnuPG home
        assert agents_left(home)  # an agent holds the key
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        assert not Path(home).exists()
        wait_until(lambda: not agents_left(home), timeout=20,
                   message="the agent to go with the command")
    finally:
        proc.kill()
        proc.wait()
