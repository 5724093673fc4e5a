"""Fixtures of the consumers' tests: consumer subprocesses and HAProxy instances that are
stopped by their own pid at the end, and a prefix of the test's own, emptied afterwards."""

from __future__ import annotations

import os
import subprocess

import pytest
from consumer_support import consumer, haproxy  # noqa: F401 - fixtures, shared
from harness import new_prefix


@pytest.fixture
def prefix(etcd):
    name = new_prefix()
    yield name
    etcd.view.client.delete_prefix(name + "/")




@pytest.fixture
def tmpfs(tmp_path):
    """mount(name, size, inodes): a small tmpfs of the test's own under tmp_path (a full disk,
    no inodes, a read-only remount), unmounted at the end. Skips where mounting is not
    allowed (not root, no CAP_SYS_ADMIN)."""
    mounted = []

    def mount(name, size="1m", inodes=None):
        path = tmp_path / name
        path.mkdir()
        options = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            if os.environ.get("CI"):  # CI runs as root on this machine kind: a real failure
                raise RuntimeError(f"cannot mount a tmpfs: {done.stderr.strip()}")
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)

