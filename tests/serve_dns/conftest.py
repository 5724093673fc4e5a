"""Fixtures of serve's DNS tests: `registrator serve` subprocesses stopped by their own pid,
HAProxy instances of the test's own, and a free port for DNS over both UDP and TCP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consumers"))

from consumer_support import HAPROXY, HAProxy, Process
from harness import new_prefix


@pytest.fixture
def consumer(tmp_path):
    started = []

    def start(*args, env=None):
        process = Process(tmp_path, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def haproxy(tmp_path):
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is not installed (scripts/setup installs it)")
    started = []

    def start(cfg, env=None):
        proxy = HAProxy(cfg, env)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def prefix(etcd):
    name = new_prefix()
    yield name
    etcd.view.delete_prefix(name + "/")
