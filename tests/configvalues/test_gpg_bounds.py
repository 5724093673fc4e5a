"""A gpg that never answers does not hang the command that decrypts (review of issue 21): a
`config get` (or an `exec --watch` read) ends with one line after a bounded time. The real
gpg imports the key; a `gpg` first in PATH hangs only when asked to decrypt."""

from __future__ import annotations

import os
import shutil

from config_support import clean_env, one_line, run_config

from registrator.configvalues.crypt import GPG_TIMEOUT


def test_a_gpg_that_hangs_is_stopped_with_one_line(config, etcd, prefix, keyfiles, tmp_path):
    assert config("set", "shop", "db.password", "hunter2-s3cret", "--encrypt",
                  "--keyring", keyfiles.public, "--allow-argv").code == 0
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    real = shutil.which("gpg")
    assert real is not None
    (wrappers / "gpg").write_text(
        '#!/bin/sh\nfor a in "$@"; do [ "$a" = --decrypt ] && exec sleep 600; done\n'
        f'exec {real} "$@"\n')
    (wrappers / "gpg").chmod(0o755)
    done = run_config(etcd.endpoint, prefix, "get", "shop", "db.password",
                      "--secret-keyring", keyfiles.secret,
                      env=clean_env(PATH=f"{wrappers}:{os.environ['PATH']}"),
                      timeout=GPG_TIMEOUT + 60)
    assert done.code == 1, done
    line = one_line(done)
    assert "db.password" in line
    assert "gpg" in line
    assert "hunter2" not in line
