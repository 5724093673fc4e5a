"""Fixtures of the configuration-value tests: a prefix of the test's own (emptied after),
gpg-made keys shared by the module's tests, and a `config` runner bound to the session's
etcd."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from config_support import Result, run_config
from gpgkeys import Keypair, agents_left, make_keypair
from harness import EtcdServer, new_prefix


@pytest.fixture
def prefix(etcd: EtcdServer) -> Iterator[str]:
    made = new_prefix()
    yield made
    etcd.view.client.delete_prefix(made + "/")


@pytest.fixture
def config(etcd: EtcdServer, prefix: str) -> Callable[..., Result]:
    def run(*args: str, stdin: bytes | None = None) -> Result:
        return run_config(etcd.endpoint, prefix, *args, stdin=stdin)

    return run


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keypair, Keypair]]:
    directory = tmp_path_factory.mktemp("gpg-keys")
    yield make_keypair(directory, "alice"), make_keypair(directory, "bob")
    assert agents_left() == [], "a gpg-agent was left running"


@pytest.fixture
def keyfiles(keys: tuple[Keypair, Keypair]) -> Keypair:
    return keys[0]

