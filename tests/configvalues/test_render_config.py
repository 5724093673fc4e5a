"""`render` templates reading configuration values (SPEC §8 `config(app, key, default)`, §9;
issue 14 item 4): host overrides, decryption with --secret-keyring, 0600 for a file that
holds a secret, owner and mode of an existing file kept, --owner/--group, re-rendered when a
value changes. Real etcd, real gpg keys, render as a real process."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
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
                  "--keyring", keyfiles.public, "--allow-argv").code == 0

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


def test_a_decrypted_value_is_masked_in_what_a_failing_check_prints(
        etcd, prefix, config, keyfiles, tmp_path):
    """Issue 21 item 2: the checker quotes the rendered line that holds the decrypted value,
    raw and in its common encodings; none of them reaches render's log."""
    secret = "hunter2-Pa55/w0rd+x"  # noqa: S105 - a test value, to be masked
    src, dest = tmp_path / "app.conf.j2", tmp_path / "app.conf"
    src.write_text(TEMPLATE)
    assert config("set", "shop", "db.password", secret, "--encrypt",
                  "--keyring", keyfiles.public, "--allow-argv").code == 0
    encoded = (base64.b64encode(secret.encode()).decode(), urllib.parse.quote(secret, safe=""))
    check = (f"grep pw= {{src}} >&2; echo {encoded[0]} >&2; echo '{encoded[1]}' >&2; "
             "exit 1")
    done = render(etcd, prefix, src, dest, "--secret-keyring", keyfiles.secret,
                  "--check-cmd", check, "--log-level", "debug")
    assert done.returncode == 1
    assert "check failed" in done.stderr
    for form in (secret, *encoded):
        assert form not in done.stderr, form
        assert form not in done.stdout
    assert "***" in done.stderr
    assert not dest.exists()


def test_one_host_name_rule_for_get_exec_and_render(etcd, prefix, config, tmp_path):
    """Issue 21 item 14: REGISTRATOR_HOSTNAME names this host for every command (as `run`
    reads it); REGISTRATOR_HOST is not a second, competing name."""
    assert config("set", "shop", "db.url", "default-url").code == 0
    assert config("set", "shop", "db.url", "h7-url", "--host", "h7").code == 0
    src, dest, dump = tmp_path / "t.j2", tmp_path / "t.out", tmp_path / "exec.out"
    src.write_text("{{ config('shop', 'db.url') }}\n")

    def seen(**env: str) -> tuple[str, str, str]:
        base = [sys.executable, "-m", "registrator"]
        store = ["--etcd-endpoints", etcd.endpoint, "--prefix", prefix]
        got = subprocess.run([*base, "config", "get", "shop", "db.url", *store],
                             env=clean_env(**env), capture_output=True, text=True,
                             timeout=60, check=False)
        ran = subprocess.run([*base, "config", "exec", "shop", *store, "--", "sh", "-c",
                              f'echo "$DB_URL" > {dump}'], env=clean_env(**env),
                             capture_output=True, text=True, timeout=60, check=False)
        rendered = subprocess.run([*base, "render", *store, "--template", str(src),
                                   "--dest", str(dest), "--once"], env=clean_env(**env),
                                  capture_output=True, text=True, timeout=60, check=False)
        assert (got.returncode, ran.returncode, rendered.returncode) == (0, 0, 0), (
            got.stderr, ran.stderr, rendered.stderr)
        return got.stdout.strip(), dump.read_text().strip(), dest.read_text().strip()

    assert seen(REGISTRATOR_HOSTNAME="h7") == ("h7-url", "h7-url", "h7-url")
    assert seen(REGISTRATOR_HOST="h7") == ("default-url", "default-url", "default-url")


def test_in_place_over_a_0644_dest_holds_the_secret_0600_same_inode(
        etcd, prefix, config, keyfiles, tmp_path):
    """Issue 21 item 3 (fixed in files.py by issue 20, whose unit test saw the old order
    fail): the staged copy the check reads and DEST itself are 0600 once they hold a secret,
    and DEST keeps its inode (a single-file bind mount)."""
    src, dest, modes = tmp_path / "app.conf.j2", tmp_path / "app.conf", tmp_path / "modes"
    src.write_text(TEMPLATE)
    dest.write_text("old content\n")
    dest.chmod(0o644)
    inode = dest.stat().st_ino
    assert config("set", "shop", "db.password", "-", "--encrypt", "--keyring",
                  keyfiles.public, stdin=b"in-place-s3cret").code == 0
    done = render(etcd, prefix, src, dest, "--secret-keyring", keyfiles.secret, "--in-place",
                  "--check-cmd", f"stat -c %a {{src}} >> {modes}")
    assert done.returncode == 0, done.stderr
    assert "pw=in-place-s3cret" in dest.read_text()
    assert (dest.stat().st_ino, dest.stat().st_mode & 0o777) == (inode, 0o600)
    assert modes.read_text().split() == ["600"]


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
                  "--keyring", keyfiles.public, "--allow-argv").code == 0
    done = render(etcd, prefix, src, dest, "--secret-keyring", keyfiles.secret)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == "url=none\npw=s3cret\n"
    assert dest.stat().st_mode & 0o777 == 0o600
