"""Where secrets come in (issue 21): a value to encrypt is refused on the command line (`ps`
shows it to every user of the host) unless `--allow-argv`, and a password file or secret
keyring that other users can read is used with a warning, as ssh warns. Real etcd with TLS
and password auth, real gpg keys."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env, config_cmd
from harness import new_prefix

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))
from tls_support import USER, USER_PASSWORD, Pki, TlsEtcdServer, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(pki, docker_client) -> Iterator[tuple[TlsEtcdServer, str]]:
    server, prefix = TlsEtcdServer(pki).start(), new_prefix()
    server.enable_auth(prefix)
    yield server, prefix
    server.stop()


def run(secured, pki: Pki, *args: str, password_file: Path,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    server, prefix = secured
    command = [*config_cmd(server.endpoint, prefix, *args), "--etcd-cacert",
               pki.path("ca.pem"), "--etcd-cert", pki.path("client.pem"), "--etcd-key",
               pki.path("client-key.pem"), "--etcd-user", USER, "--etcd-password-file",
               str(password_file)]
    done = subprocess.run(command, input=stdin, capture_output=True, env=clean_env(),
                          timeout=60, check=False)
    return subprocess.CompletedProcess(command, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "etcd-password"
    path.write_text(USER_PASSWORD + "\n")
    path.chmod(0o600)
    return path


def test_a_value_to_encrypt_is_refused_on_the_command_line(secured, pki, keys,
                                                          password_file):
    alice, _ = keys
    refused = run(secured, pki, "set", "shop", "pw", "hunter2-s3cret", "--encrypt",
                  "--keyring", alice.public, password_file=password_file)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ps" in lines[0]
    assert "'-'" in lines[0]
    assert "hunter2" not in refused.stderr
    got = run(secured, pki, "get", "shop", "pw", "--secret-keyring", alice.secret,
              password_file=password_file)
    assert got.returncode == 1  # nothing was written
    # From stdin, as the hint says; or on purpose with --allow-argv.
    assert run(secured, pki, "set", "shop", "pw", "-", "--encrypt", "--keyring", alice.public,
               password_file=password_file, stdin=b"hunter2-s3cret").returncode == 0
    assert run(secured, pki, "set", "shop", "pw2", "other-s3cret", "--encrypt", "--keyring",
               alice.public, "--allow-argv", password_file=password_file).returncode == 0
    got = run(secured, pki, "get", "shop", "pw", "--secret-keyring", alice.secret,
              password_file=password_file)
    assert (got.returncode, got.stdout) == (0, "hunter2-s3cret\n")


def test_secret_files_readable_by_others_are_warned_about(secured, pki, keys, password_file,
                                                         tmp_path):
    alice, _ = keys
    assert run(secured, pki, "set", "shop", "pw", "-", "--encrypt", "--keyring", alice.public,
               password_file=password_file, stdin=b"s3cret-value").returncode == 0
    private = tmp_path / "sec.asc"
    shutil.copy(alice.secret, private)
    private.chmod(0o600)
    quiet = run(secured, pki, "get", "shop", "pw", "--secret-keyring", str(private),
                password_file=password_file)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "s3cret-value\n", "")

    password_file.chmod(0o644)
    private.chmod(0o644)
    warned = run(secured, pki, "get", "shop", "pw", "--secret-keyring", str(private),
                 password_file=password_file)
    assert (warned.returncode, warned.stdout) == (0, "s3cret-value\n")  # still works
    lines = warned.stderr.strip().splitlines()
    assert len(lines) == 2, warned.stderr
    for flag, path in (("--etcd-password-file", password_file), ("--secret-keyring", private)):
        (line,) = [x for x in lines if flag in x]
        assert str(path) in line
        assert "0644" in line
        assert "chmod 600" in line
    assert USER_PASSWORD not in warned.stderr
