"""Fixtures of the serve tests: serve subprocesses stopped by their own pid, and a prefix of
the test's own on the store under test, emptied afterwards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "consumers"))

from consumer_support import consumer  # noqa: F401 - a fixture, shared
from harness import new_prefix


@pytest.fixture
def prefix(store):
    name = new_prefix()
    yield name
    try:
        store.view.delete_prefix(name + "/")
    except Exception:  # noqa: BLE001 - a test may have stopped the store
        return
