"""deploy/compose.yaml brought up with docker-compose (compose v1, what Debian packages; the
file is the Compose Specification, so v2 reads it too), with the local images."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from harness import BUSYBOX_IMAGE, ETCD_IMAGE, EtcdView, free_port, wait_until

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def project_objects(docker_client, name: str) -> dict[str, list[str]]:
    """Everything compose made for this project (it labels containers, networks, volumes)."""
    label = {"label": f"com.docker.compose.project={name}"}
    return {
        "containers": [c.name for c in docker_client.containers.list(all=True, filters=label)],
        "networks": [n.name for n in docker_client.networks.list(filters=label)],
        "volumes": [v.name for v in docker_client.volumes.list(filters=label)],
    }


@pytest.fixture
def project(image, docker_gid, docker_client):
    name = f"regtest{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ETCD_IMAGE": ETCD_IMAGE, "APP_IMAGE": BUSYBOX_IMAGE,
           "REGISTRATOR_IMAGE": image, "ETCD_PORT": str(free_port()), "DOCKER_GID": docker_gid,
           "REGISTRATOR_PREFIX": f"/{name}", "REGISTRATOR_IP": "127.0.0.1",
           "REGISTRATOR_HOSTNAME": f"host-{name}",
           "REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{free_port()}"}

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", "-p", name, "-f", str(COMPOSE_FILE), *args],
                              env=env, check=True, capture_output=True, text=True, timeout=180)

    try:
        compose("up", "-d")
        yield name, env, compose
    finally:
        compose("down", "-v", "--remove-orphans", "-t", "20")


def test_compose_registers_only_the_opted_in_app_under_its_service_name(project, containers,
                                                                         docker_client):
    name, env, compose = project
    view = EtcdView(int(env["ETCD_PORT"]))
    try:
        prefix = env["REGISTRATOR_PREFIX"]
        mine = {c.id: c.labels["com.docker.compose.service"]
                for c in docker_client.containers.list(
                    filters={"label": f"com.docker.compose.project={name}"})}
        assert sorted(mine.values()) == ["etcd", "registrator", "sidecar", "web"]
        web_id = next(cid for cid, svc in mine.items() if svc == "web")
        sidecar_id = next(cid for cid, svc in mine.items() if svc == "sidecar")
        entries = wait_until(
            lambda: [v for v in view.services(prefix).values() if v["container_id"] in mine],
            timeout=60, message="the compose app registered")
        assert [(e["name"], e["container_id"]) for e in entries] == [("web", web_id)]
        assert entries[0]["tags"] == ["example", "http"]
        assert entries[0]["host"] == env["REGISTRATOR_HOSTNAME"]
        # Events are handled in order: once a witness started after `up` is registered, the
        # sidecar has been looked at too, and left out.
        witness = containers.run(ports={"80/tcp": ("127.0.0.1", None)},
                                 labels={"registrator.enable": "true"})
        wait_until(lambda: witness.id in {v["container_id"]
                                          for v in view.services(prefix).values()},
                   timeout=30, message="the witness registered")
        assert sidecar_id not in {v["container_id"] for v in view.services(prefix).values()}
        compose("stop", "-t", "20", "registrator")
        wait_until(lambda: not view.keys(prefix + "/"), message="entries gone on SIGTERM")
    finally:
        view.close()
    compose("down", "-v", "--remove-orphans", "-t", "20")
    assert project_objects(docker_client, name) == {"containers": [], "networks": [],
                                                    "volumes": []}
