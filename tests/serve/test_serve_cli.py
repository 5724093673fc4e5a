"""`registrator serve` as a command: it stays out of `run`'s imports, bad flags exit 2 with
one line, SIGTERM exits 0, and configuration values are served only with --show-config,
encrypted ones never as text or ciphertext (SPEC §11)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from consumer_support import cli
from gpgkeys import make_keypair
from harness import wait_until
from serve_support import Serve
from zk_harness import both_stores

from registrator.configvalues.crypt import encrypt

RUN_IMPORTS = ("registrator.cli", "registrator.daemon", "registrator.docker_source",
               "registrator.settings", "registrator.stores.etcd", "registrator.stores.zookeeper",
               "registrator.metrics_server", "registrator.consumers.commands")


def test_run_and_the_cli_do_not_import_serve():
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in RUN_IMPORTS)
            + "print([m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', "
              "'anyio', 'h11') or m.startswith('registrator.serve')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("args", "says"), [
    ([], "serve needs --http HOST:PORT and/or --dns HOST:PORT"),
    (["--http", "nonsense"], "--http 'nonsense' must look like HOST:PORT"),
    (["--http", "127.0.0.1:70000"], "must look like HOST:PORT"),
    (["--http", "127.0.0.1:1", "--http-cert", "/nonexistent.pem"], "--http-cert"),
    (["--http", "127.0.0.1:1", "--stale-after", "0"], "--stale-after '0'"),
    (["--http", "127.0.0.1:1", "--dns-ttl", "soon"], "--dns-ttl 'soon'"),
    (["--dns", "127.0.0.1:1", "--domain", "."], "--domain '.'"),
])
def test_bad_flags_exit_2_with_one_line(args, says):
    out = cli("serve", "--etcd-endpoints", "http://127.0.0.1:1", *args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert says in lines[0]


@pytest.fixture(scope="module")
def keyfiles(tmp_path_factory):
    return make_keypair(tmp_path_factory.mktemp("gpg-keys"), "serve")


@both_stores
def test_config_served_only_with_show_config_and_never_an_encrypted_value(
        store, prefix, consumer, keyfiles):
    # Written as `config set` writes them (SPEC §9 keys, crypt's format), straight to the
    # store: this test is about what serve shows.
    secret = "hunter2-s3cret"  # noqa: S105 - a test value
    ciphertext = encrypt(secret.encode(), keyfiles.public)
    root = f"{prefix}/config/shop"
    store.view.put(f"{root}/defaults/url", "https://shop.example")
    store.view.put(f"{root}/defaults/password", ciphertext.decode())
    store.view.put(f"{root}/hosts/node1/url", "https://node1.shop.example")

    hidden = Serve(consumer, store, prefix)
    assert hidden.get("/v1/config/shop")[0] == 404
    assert hidden.get("/ui/config/shop")[0] == 404
    assert secret.encode() not in hidden.get("/ui/config/shop")[2]

    serve = Serve(consumer, store, prefix, "--show-config")
    wait_until(lambda: len(serve.json("/v1/config/shop")) == 2, message="two values")
    values = {v["key"]: v for v in serve.json("/v1/config/shop")}
    assert values["url"]["value"] == "https://shop.example"
    assert values["url"]["source"] == "default"
    assert values["password"]["encrypted"] is True
    assert values["password"]["value"] is None
    host = {v["key"]: v for v in serve.json("/v1/config/shop?host=node1")}
    assert host["url"]["value"] == "https://node1.shop.example"
    assert host["url"]["source"] == "host"
    assert serve.get("/v1/config/bad..name")[0] == 400
    for path in ("/v1/config/shop", "/v1/config/shop?host=node1", "/ui/config/shop",
                 "/ui/config"):
        status, _, body = serve.get(path)
        assert status == 200, path
        assert secret.encode() not in body
        assert ciphertext[:40] not in body
    page = serve.get("/ui/config/shop")[2].decode()
    assert "(encrypted)" in page
    assert "https://shop.example" in page
    assert "node1" in page  # the host that overrides url, with its value
    assert "https://node1.shop.example" in page
    assert serve.process.stop() == 0  # SIGTERM: exit 0
    assert json.loads(serve.process.log_path.read_text().splitlines()[0])  # JSON logs


def test_http_port_taken_exits_2_with_one_line(etcd):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = cli("serve", "--etcd-endpoints", etcd.endpoint, "--http", f"127.0.0.1:{port}")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"--http 127.0.0.1:{port}" in lines[0]
