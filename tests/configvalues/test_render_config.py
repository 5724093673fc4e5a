"""`render` templates reading configuration values (SPEC §8 `config(app, key, default)`, §9;
issue 14 item 4): host overrides, decryption with --secret-keyring, 0600 for a file that
holds a secret, owner and mode of an existing file kept, --owner/--group, re-rendered when a
value changes. Real etcd, real gpg keys, render as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config_support import clean_env
from harness import wait_until

TEMPLATE = ("url={{ config('shop', 'db.url', 'none') }}\n"
            "pw={{ config('shop', 'db.password', 'unset') }}\n")
NOBODY = 65534


def render(etcd, prefix, src, dest, *extra, once=True):
    cmd = [sys.executable, "-m", "registrator", "render", "--etcd-endpoints", etcd.endpoint,
           "--prefix", prefix, "--template", str(src), "--dest", str(dest),
           "--hostname", "host7", "--wait", "20ms:200ms", *extra]
    if once:
        return subprocess.run([*cmd, "--once"], capture_output=True, text=True, timeout=60,
                              env=clean_env(), check=False)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env())


def test_config_values_render_with_host_overrides_and_re_render_on_change(
        etcd, prefix, config, tmp_path):
    src, dest = tmp_path / "app.conf.j2", tmp_path / "app.conf"
    src.write_text(TEMPLATE)
    assert config("set", "shop", "db.url", "postgres://db/shop").code == 0
    done = render(etcd, prefix, src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "url=postgres://db/shop\npw=unset\n"
    assert dest.stat().st_mode & 0o777 == 0o644  # nothing secret in it

    assert config("set", "shop", "db.url", "postgres://replica/shop", "--host", "host7").code == 0
    proc = render(etcd, prefix, src, dest, once=False)
    try:
        wait_until(lambda: dest.read_text().startswith("url=postgres://replica/shop"),
                   message="the host override rendered")
        assert config("rm", "shop", "db.url", "--host", "host7").code == 0
        wait_until(lambda: dest.read_text().startswith("url=postgres://db/shop"),
                   message="re-rendered after the override went")
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_decrypted_value_makes_the_file_0600_and_owner_is_kept(
        etcd, prefix, config, keyfiles, tmp_path):
    src, dest = tmp_path / "app.conf.j2", tmp_path / "app.conf"
    src.write_text(TEMPLATE)
    assert config("set", "shop", "db.password", "s3cret", "--encrypt",
                  "--keyring", keyfiles.public).code == 0

    without = render(etcd, prefix, src, dest)
    assert without.returncode == 1
    assert "--secret-keyring" in without.stderr
    assert not dest.exists()  # nothing written, and never the ciphertext

    dest.write_text("old\n")
    dest.chmod(0o644)
    os.chown(dest, NOBODY, NOBODY)
    done = render(etcd, prefix, src, dest, "--secret-keyring", keyfiles.secret)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "url=none\npw=s3cret\n"
    assert dest.stat().st_mode & 0o777 == 0o600
    assert (dest.stat().st_uid, dest.stat().st_gid) == (NOBODY, NOBODY)  # kept
    assert "s3cret" not in done.stderr + done.stdout

    other = tmp_path / "other.conf"
    done = render(etcd, prefix, src, other, "--secret-keyring", keyfiles.secret,
                  "--mode", "0640", "--owner", str(NOBODY), "--group", "0")
    assert done.returncode == 0, done.stderr
    assert other.stat().st_mode & 0o777 == 0o640
    assert (other.stat().st_uid, other.stat().st_gid) == (NOBODY, 0)


def test_bad_owner_is_exit_2_with_one_line(etcd, prefix, tmp_path):
    src = tmp_path / "t.j2"
    src.write_text("x\n")
    done = render(etcd, prefix, src, tmp_path / "out", "--owner", "no-such-user-here")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "registrator: error: --owner 'no-such-user-here': no such user"]
    assert not Path(tmp_path / "out").exists()


def test_a_value_that_becomes_encrypted_makes_an_unchanged_file_0600(
        etcd, prefix, config, keyfiles, tmp_path):
    """A password moved from plain to encrypted renders the same text: the file must still
    lose its 0644, it holds a decrypted secret now."""
    src, dest = tmp_path / "app.conf.j2", tmp_path / "app.conf"
    src.write_text(TEMPLATE)
    assert config("set", "shop", "db.password", "s3cret").code == 0
    done = render(etcd, prefix, src, dest, "--secret-keyring", keyfiles.secret)
    assert done.returncode == 0, done.stderr
    assert dest.stat().st_mode & 0o777 == 0o644
    assert config("set", "shop", "db.password", "s3cret", "--encrypt",
                  "--keyring", keyfiles.public).code == 0
    done = render(etcd, prefix, src, dest, "--secret-keyring", keyfiles.secret)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "url=none\npw=s3cret\n"
    assert dest.stat().st_mode & 0o777 == 0o600
