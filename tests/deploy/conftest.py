"""The image, built once per session the way an operator builds it (scripts/build-image),
its size and build time reported in the test output."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from deploy_support import IMAGE, ROOT


@pytest.fixture(scope="session")
def image(docker_client, request) -> str:
    env = {**os.environ, "IMAGE": IMAGE}
    began = time.monotonic()
    subprocess.run(["bash", "scripts/build-image"], cwd=ROOT, env=env, check=True, timeout=900)
    took = time.monotonic() - began
    size = docker_client.images.get(IMAGE).attrs["Size"]
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even when the tests pass
            reporter.write_line(f"[deploy] image {IMAGE}: {size / 1e6:.0f} MB, "
                                f"scripts/build-image took {took:.0f} s")
    return IMAGE


@pytest.fixture(scope="session")
def docker_gid() -> str:
    return str(Path("/var/run/docker.sock").stat().st_gid)
