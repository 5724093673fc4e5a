"""Fixtures of serve's DNS tests: `registrator serve` subprocesses stopped by their own pid,
HAProxy instances of the test's own, and a free port for DNS over both UDP and TCP."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consumers"))

from consumer_support import consumer, haproxy  # noqa: F401 - fixtures, shared
from harness import new_prefix


@pytest.fixture
def prefix(etcd):
    name = new_prefix()
    yield name
    etcd.view.delete_prefix(name + "/")
