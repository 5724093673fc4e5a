"""What `config exec` hands the program (issue 21): the program's own environment plus the
app's values, never exec's own credentials and settings (`REGISTRATOR_*`), never a store
value that would pick the program's code (PATH, LD_PRELOAD, ...), never a name that is not
a variable name. Against etcd with TLS and password auth, as exec runs in production."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env
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
              "--keyring", alice.public)
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

