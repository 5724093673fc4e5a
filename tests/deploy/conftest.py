"""The image, built once per session the way an operator builds it (scripts/build-image)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("REGISTRATOR_TEST_IMAGE", "registrator:latest")


@pytest.fixture(scope="session")
def image(docker_client) -> str:
    env = {**os.environ, "IMAGE": IMAGE}
    subprocess.run(["bash", "scripts/build-image"], cwd=ROOT, env=env, check=True, timeout=900)
    return IMAGE


@pytest.fixture(scope="session")
def docker_gid() -> str:
    return str(Path("/var/run/docker.sock").stat().st_gid)
