"""Fixtures of the consumers' tests: consumer subprocesses and HAProxy instances that are
stopped by their own pid at the end, and a prefix of the test's own, emptied afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from consumer_support import HAPROXY, HAProxy, Process
from harness import new_prefix


@pytest.fixture
def prefix(etcd):
    name = new_prefix()
    yield name
    etcd.view.client.delete_prefix(name + "/")


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

    def start(cfg):
        proxy = HAProxy(cfg)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
