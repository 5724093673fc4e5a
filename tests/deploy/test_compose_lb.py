"""examples/haproxy/compose.yaml brought up the way its header says, with the local images:
`up -d --scale web=3`, then requests through HAProxy reach all three; scaled to 1, HAProxy
follows."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest
from deploy_support import ROOT
from harness import BUSYBOX_IMAGE, ETCD_IMAGE, answer, free_port, wait_until

COMPOSE_FILE = ROOT / "examples" / "haproxy" / "compose.yaml"
HAPROXY_IMAGE = os.environ.get("REGISTRATOR_TEST_HAPROXY_IMAGE", "registrator-test/haproxy:2.6")


@pytest.fixture(scope="session")
def haproxy_image():
    if "REGISTRATOR_TEST_HAPROXY_IMAGE" not in os.environ and not shutil.which("haproxy"):
        pytest.skip("haproxy is not installed (scripts/setup installs it)")
    subprocess.run(["bash", str(ROOT / "examples" / "haproxy" / "local-haproxy-image")],
                   env={**os.environ, "IMAGE": HAPROXY_IMAGE}, check=True, timeout=120)
    return HAPROXY_IMAGE


@pytest.fixture
def lb_project(image, docker_gid, haproxy_image):
    name = f"reglb{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ETCD_IMAGE": ETCD_IMAGE, "APP_IMAGE": BUSYBOX_IMAGE,
           "REGISTRATOR_IMAGE": image, "HAPROXY_IMAGE": haproxy_image,
           "ETCD_PORT": str(free_port()), "LB_PORT": str(free_port()), "LB_NAME": name,
           "DOCKER_GID": docker_gid, "REGISTRATOR_PREFIX": f"/{name}",
           "REGISTRATOR_IP": "127.0.0.1", "REGISTRATOR_METRICS_PORT": str(free_port()),
           "RENDER_METRICS_PORT": str(free_port())}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "-p", name, "-f", str(COMPOSE_FILE), *args],
                              env=env, check=True, capture_output=True, text=True, timeout=180)

    try:
        compose("up", "-d", "--scale", "web=3")
        yield env, compose
    finally:
        compose("down", "-v", "--remove-orphans", "-t", "20")


def test_compose_example_balances_over_the_scaled_service(lb_project):
    env, compose = lb_project
    port = int(env["LB_PORT"])

    def seen(count: int) -> set[str]:
        return {a for a in (answer(port) for _ in range(count)) if a}

    three = wait_until(lambda: len(s := seen(9)) == 3 and s, timeout=90,
                       message="three web containers behind HAProxy")
    assert len(three) == 3
    compose("up", "-d", "--scale", "web=1")
    one = wait_until(lambda: len(s := seen(6)) == 1 and s, timeout=60,
                     message="one web container behind HAProxy")
    assert one < three
