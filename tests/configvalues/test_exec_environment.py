"""What `config exec` hands the program (issue 21): the program's own environment plus the
app's values, never exec's own credentials and settings (`REGISTRATOR_*`), never a store
value that would pick the program's code (PATH, LD_PRELOAD, ...), never a name that is not
a variable name. Against etcd with TLS and password auth, as exec runs in production."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env, exec_cmd
from harness import new_prefix

sys.path.insert(0, str(Path(__file__).parents[1] / "security"))
from tls_support import USER, USER_PASSWORD, Pki, TlsEtcdServer, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(pki, docker_client) -> Iterator[tuple[TlsEtcdServer, str]]:
    """etcd over TLS with auth on; USER may read and write `<prefix>/` only."""
    server, prefix = TlsEtcdServer(pki).start(), new_prefix()
    server.enable_auth(prefix)
    yield server, prefix
    server.stop()


def store_env(pki: Pki, server: TlsEtcdServer, prefix: str, **extra: str) -> dict[str, str]:
    """exec configured the way a container is: everything through REGISTRATOR_*."""
    return clean_env(
        REGISTRATOR_ETCD_ENDPOINTS=server.endpoint, REGISTRATOR_PREFIX=prefix,
        REGISTRATOR_ETCD_CACERT=pki.path("ca.pem"), REGISTRATOR_ETCD_CERT=pki.path("client.pem"),
        REGISTRATOR_ETCD_KEY=pki.path("client-key.pem"), REGISTRATOR_ETCD_USER=USER,
        REGISTRATOR_ETCD_PASSWORD=USER_PASSWORD, **extra)


def dumped_env(tmp_path: Path, args: list[str], env: dict[str, str]) -> tuple[dict, str]:
    """Run `registrator config exec ARGS -- <env dumper>`; the program's environment, and
    exec's stderr."""
    dump = tmp_path / "env.json"
    dump.unlink(missing_ok=True)
    program = [sys.executable, "-c",
               f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))"]
    done = subprocess.run([sys.executable, "-m", "registrator", "config", "exec", *args, "--",
                           *program], env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(dump.read_text()), done.stderr.decode()


def set_value(pki: Pki, server: TlsEtcdServer, prefix: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "registrator", "config", "set", *args],
                          env=store_env(pki, server, prefix), capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_exec_keeps_its_own_credentials_from_the_program(secured, pki, keys, tmp_path):
    server, prefix = secured
    alice, _ = keys
    set_value(pki, server, prefix, "shop", "db.password", "hunter2-s3cret", "--encrypt",
              "--keyring", alice.public, "--allow-argv")
    env = store_env(pki, server, prefix, REGISTRATOR_SECRET_KEYRING=alice.secret,
                    REGISTRATOR_LOG_LEVEL="warning", UNRELATED="kept")
    seen, _ = dumped_env(tmp_path, ["shop"], env)
    assert seen["DB_PASSWORD"] == "hunter2-s3cret"  # noqa: S105 - the app's own value
    assert seen["UNRELATED"] == "kept"
    assert USER_PASSWORD not in json.dumps(seen)
    assert [name for name in seen if name.startswith("REGISTRATOR_")] == []

    # On purpose, one by one: the program may get the endpoints, and still not the password.
    seen, _ = dumped_env(tmp_path, ["shop", "--pass-env", "REGISTRATOR_ETCD_ENDPOINTS",
                                    "--pass-env", "REGISTRATOR_PREFIX"], env)
    assert sorted(name for name in seen if name.startswith("REGISTRATOR_")) == [
        "REGISTRATOR_ETCD_ENDPOINTS", "REGISTRATOR_PREFIX"]
    assert seen["REGISTRATOR_ETCD_ENDPOINTS"] == server.endpoint



def probe(directory: Path, tag: str, out: Path) -> None:
    """An executable `h21-probe` in `directory` that writes its tag and environment."""
    directory.mkdir(exist_ok=True)
    script = directory / "h21-probe"
    script.write_text(f"#!{sys.executable}\nimport json, os\n"
                      f"json.dump({{'tag': {tag!r}, 'env': dict(os.environ)}}, "
                      f"open({str(out)!r}, 'w'))\n")
    script.chmod(0o755)


def run_probe(etcd, prefix: str, tmp_path: Path, *options: str) -> tuple[dict, str]:
    out = tmp_path / "probe.json"
    out.unlink(missing_ok=True)
    good = tmp_path / "good"
    env = clean_env(PATH=f"{good}:/usr/bin:/bin", HOME="/home/mine", LD_LIBRARY_PATH="/mine")
    done = subprocess.run(exec_cmd(etcd.endpoint, prefix, "shop", *options,
                                   program=["h21-probe"]),
                          env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(out.read_text()), done.stderr.decode()


def test_store_values_cannot_pick_the_program_or_what_it_loads(config, etcd, prefix,
                                                                 tmp_path):
    out = tmp_path / "probe.json"
    probe(tmp_path / "good", "good", out)
    probe(tmp_path / "evil", "evil", out)
    for key, value in (("path", str(tmp_path / "evil")), ("ld_preload", "/nonexistent/evil.so"),
                       ("ld.library.path", "/evil"), ("home", "/evil"),
                       ("pythonpath", "/evil"), ("db.url", "postgres://db")):
        assert config("set", "shop", key, value).code == 0
    seen, err = run_probe(etcd, prefix, tmp_path)
    assert seen["tag"] == "good"  # resolved in exec's own PATH, not the store's
    env = seen["env"]
    assert env["DB_URL"] == "postgres://db"
    assert env["PATH"].startswith(str(tmp_path / "good"))
    assert (env["HOME"], env["LD_LIBRARY_PATH"]) == ("/home/mine", "/mine")
    assert "LD_PRELOAD" not in env
    assert "PYTHONPATH" not in env
    for name in ("PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "HOME", "PYTHONPATH"):
        lines = [line for line in err.splitlines() if f"${name} " in line]
        assert len(lines) == 1, err  # one warning each, naming the variable
        assert "--allow-env" in lines[0]
    # Let through by name, on purpose: the value is set, the program is still exec's.
    seen, err = run_probe(etcd, prefix, tmp_path, "--allow-env", "PATH", "--allow-env",
                          "HOME")
    assert seen["tag"] == "good"
    assert (seen["env"]["PATH"], seen["env"]["HOME"]) == (str(tmp_path / "evil"), "/evil")
    assert "LD_PRELOAD" not in seen["env"]


def test_keys_that_are_not_variable_names_are_skipped(config, etcd, prefix, tmp_path):
    probe(tmp_path / "good", "good", tmp_path / "probe.json")
    for key in ("1abc", "0/x", "db.url"):
        assert config("set", "shop", key, "v-" + key).code == 0
    seen, err = run_probe(etcd, prefix, tmp_path)
    assert seen["env"]["DB_URL"] == "v-db.url"
    assert "1ABC" not in seen["env"]
    assert "0_X" not in seen["env"]
    for name in ("1ABC", "0_X"):
        assert len([line for line in err.splitlines() if f"${name} " in line]) == 1, err
    # With a prefix they are names again.
    seen, _ = run_probe(etcd, prefix, tmp_path, "--prefix-env", "APP_")
    assert (seen["env"]["APP_1ABC"], seen["env"]["APP_0_X"]) == ("v-1abc", "v-0/x")


# Each of these makes some program run code of the value's choosing (or trust other TLS
# roots, or read its startup files elsewhere): a shell's, git's, OpenSSL's, Lua's, PHP's,
# .NET's, Erlang's, Perl's debugger, less's input filter, an editor or pager a program opens.
MORE_DANGEROUS = ("lua.init", "lua.path", "openssl.conf", "openssl.engines", "phprc",
                  "php.ini.scan.dir", "dotnet.startup.hooks", "coreclr.profiler.path",
                  "erl.aflags", "perl5db", "lessopen", "editor", "pager", "zdotdir",
                  "shellopts", "bashopts", "git.config.parameters", "git.config.count",
                  "git.askpass", "ssh.askpass", "requests.ca.bundle", "curl.ca.bundle",
                  "node.extra.ca.certs", "java.home", "gem.path", "r.profile.user")


def test_more_names_that_pick_what_runs_are_skipped(config, etcd, prefix, tmp_path):
    probe(tmp_path / "good", "good", tmp_path / "probe.json")
    for key in (*MORE_DANGEROUS, "node.env"):
        assert config("set", "shop", key, "/srv/evil").code == 0
    seen, err = run_probe(etcd, prefix, tmp_path)
    assert seen["env"]["NODE_ENV"] == "/srv/evil"  # an ordinary setting stays
    names = [key.upper().replace(".", "_") for key in MORE_DANGEROUS]
    # (the program's own value of such a name stays: this machine sets a few CA bundles)
    assert [name for name in names if seen["env"].get(name) == "/srv/evil"] == []
    for name in names:
        assert len([line for line in err.splitlines() if f"${name} " in line]) == 1, err


def test_render_keeps_its_own_credentials_from_check_and_reload_commands(secured, pki,
                                                                          tmp_path):
    """The commands render runs (a checker, a reload) are programs too: they get render's
    environment without its REGISTRATOR_* settings, the store password among them."""
    server, prefix = secured
    set_value(pki, server, prefix, "shop", "db.url", "postgres://db")
    src, dest = tmp_path / "app.conf.j2", tmp_path / "app.conf"
    src.write_text("url={{ config('shop', 'db.url') }}\n")
    seen = {"check": tmp_path / "check.env", "reload": tmp_path / "reload.env"}
    env = store_env(pki, server, prefix, UNRELATED="kept")
    done = subprocess.run(
        [sys.executable, "-m", "registrator", "render", "--once", "--template", str(src),
         "--dest", str(dest), "--check-cmd", f"env > {seen['check']}",
         "--reload-cmd", f"env > {seen['reload']}"],
        env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert dest.read_text() == "url=postgres://db\n"
    for path in seen.values():
        text = path.read_text()
        assert "UNRELATED=kept" in text
        assert USER_PASSWORD not in text
        assert [line for line in text.splitlines() if line.startswith("REGISTRATOR_")] == []


def test_gpg_does_not_get_the_store_password(secured, pki, keys, tmp_path):
    """gpg (and the agent it starts) decrypt with the keyring only: they do not get the
    command's REGISTRATOR_* settings either. A `gpg` first in PATH records its environment
    and runs the real one."""
    server, prefix = secured
    alice, _ = keys
    set_value(pki, server, prefix, "shop", "db.password", "hunter2-s3cret", "--encrypt",
              "--keyring", alice.public, "--allow-argv")
    wrappers, seen = tmp_path / "bin", tmp_path / "gpg.env"
    wrappers.mkdir()
    real = shutil.which("gpg")
    assert real is not None
    (wrappers / "gpg").write_text(f'#!/bin/sh\nenv >> {seen}\nexec {real} "$@"\n')
    (wrappers / "gpg").chmod(0o755)
    env = store_env(pki, server, prefix, REGISTRATOR_SECRET_KEYRING=alice.secret,
                    PATH=f"{wrappers}:{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "registrator", "config", "get", "shop",
                           "db.password"], env=env, capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"hunter2-s3cret\n"
    text = seen.read_text()
    assert "PATH=" in text  # the wrapper ran
    assert USER_PASSWORD not in text
    assert [line for line in text.splitlines() if line.startswith("REGISTRATOR_")] == []
