"""Fixtures of the consumers' tests: consumer subprocesses and HAProxy instances that are
stopped by their own pid at the end, and a prefix of the test's own, emptied afterwards."""

from __future__ import annotations

import os
import subprocess
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

