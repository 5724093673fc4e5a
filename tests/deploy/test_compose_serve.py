"""deploy/compose.yaml's `serve` profile (SPEC §11): the same image runs `registrator serve`
on loopback, answering what the compose daemon registered; off unless the profile is named
(test_compose.py's project, started without it, has no serve container)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid

import pytest
from harness import BUSYBOX_IMAGE, ETCD_IMAGE, free_port, wait_until
from test_compose import COMPOSE_FILE, project_objects


@pytest.fixture
def serve_project(image, docker_gid, docker_client):
    name = f"regtest{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ETCD_IMAGE": ETCD_IMAGE, "APP_IMAGE": BUSYBOX_IMAGE,
           "REGISTRATOR_IMAGE": image, "ETCD_PORT": str(free_port()), "DOCKER_GID": docker_gid,
           "REGISTRATOR_PREFIX": f"/{name}", "REGISTRATOR_IP": "127.0.0.1",
           "REGISTRATOR_HOSTNAME": f"host-{name}",
           "REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{free_port()}",
           "SERVE_HTTP": f"127.0.0.1:{free_port()}",
           "SERVE_METRICS_ADDR": f"127.0.0.1:{free_port()}"}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "-p", name, "-f", str(COMPOSE_FILE),
                               "--profile", "serve", *args],
                              env=env, check=True, capture_output=True, text=True, timeout=180)

    try:
        compose("up", "-d")
        yield name, env
    finally:
        compose("down", "-v", "--remove-orphans", "-t", "20")
    assert project_objects(docker_client, name)["containers"] == []


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - http only
            return response.status, response.read()
    except OSError:
        return None, b""


def test_compose_serve_profile_answers_what_the_daemon_registered(serve_project,
                                                                  docker_client):
    name, env = serve_project
    base = f"http://{env['SERVE_HTTP']}"
    entries = wait_until(lambda: (r := _get(base + "/v1/services/web"))[0] == 200
                         and json.loads(r[1]), timeout=90, message="serve to show web")
    assert entries[0]["host"] == env["REGISTRATOR_HOSTNAME"]
    status, page = _get(base + "/")
    assert status == 200
    assert b"web" in page
    # The image's HEALTHCHECK asks serve's /healthz on SERVE_METRICS_ADDR.
    assert _get(f"http://{env['SERVE_METRICS_ADDR']}/healthz") == (200, b"ok\n")
    serve = next(c for c in docker_client.containers.list(
        filters={"label": f"com.docker.compose.project={name}"})
        if c.labels["com.docker.compose.service"] == "serve")
    assert serve.attrs["Config"]["Cmd"] == ["serve"]
