"""Every marked shell block of the README and the documentation runs as written, against
this machine's dockerd and the etcd the blocks themselves start (docblocks.py says what is
substituted). A command that stops working fails here."""

from __future__ import annotations

import os
import uuid

import pytest
from docblocks import (
    BlockFailedError,
    container_names,
    run_block,
    scenarios,
    substituted,
    substitutions,
)
from harness import BUSYBOX_IMAGE, ETCD_IMAGE, free_port
from registrator_image import ROOT

FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCENARIOS = scenarios(FILES)
HAPROXY_IMAGE = os.environ.get("REGISTRATOR_TEST_HAPROXY_IMAGE", "registrator-test/haproxy:2.6")
# The upstream images the documentation names, and this machine's local ones (no registry).
LOCAL = {"quay.io/coreos/etcd:v3.5.17": ETCD_IMAGE, "busybox:stable": BUSYBOX_IMAGE,
         "haproxy:2.6": HAPROXY_IMAGE}


def test_the_readme_and_the_install_page_have_runnable_blocks():
    assert "README.md:quickstart" in SCENARIOS
    assert any(key.startswith("install.md:") for key in SCENARIOS)


@pytest.fixture
def local_haproxy_image():
    import subprocess  # noqa: PLC0415

    subprocess.run(["bash", str(ROOT / "examples" / "haproxy" / "local-haproxy-image")],
                   env={**os.environ, "IMAGE": HAPROXY_IMAGE}, check=True, timeout=120)


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_documented_blocks_run(key, request):
    blocks = SCENARIOS[key]
    # Docker, the image and the HAProxy image only for the scenarios that use them.
    uses_docker = any("docker" in b.body for b in blocks)
    image = request.getfixturevalue("image") if uses_docker else "registrator:latest"
    if any("examples/haproxy" in b.body for b in blocks):
        request.getfixturevalue("local_haproxy_image")
    docker_client = request.getfixturevalue("docker_client") if uses_docker else None
    taken = [n for n in sorted(container_names(blocks)) if docker_client is not None
             and docker_client.containers.list(all=True, filters={"name": f"^/{n}$"})]
    if taken:
        # Never remove someone else's container of that name (a developer's own host).
        message = f"containers named {taken} exist; {key} needs these names"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    etcd_port, lb_port = free_port(), free_port()
    subs = substitutions(image, etcd_port, lb_port, LOCAL)
    project = f"doc{uuid.uuid4().hex[:8]}"
    # What the compose files read: the local images, free ports, a project of its own.
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project, "REGISTRATOR_IMAGE": image,
           "ETCD_IMAGE": ETCD_IMAGE, "APP_IMAGE": BUSYBOX_IMAGE, "HAPROXY_IMAGE": HAPROXY_IMAGE,
           "ETCD_PORT": str(etcd_port), "LB_PORT": str(lb_port),
           "REGISTRATOR_METRICS_PORT": str(free_port()), "RENDER_METRICS_PORT": str(free_port()),
           "REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
    try:
        for block in (b for b in blocks if not b.cleanup):
            run_block(block, substituted(block.body, subs), env, ROOT)
    finally:
        problems = []
        for block in (b for b in blocks if b.cleanup):
            try:
                run_block(block, substituted(block.body, subs), env, ROOT)
            except BlockFailedError as exc:
                problems.append(str(exc))
        for name in container_names(blocks) if docker_client is not None else ():
            # What a failed block left behind (the names were free when it began).
            for container in docker_client.containers.list(all=True,
                                                           filters={"name": f"^/{name}$"}):
                container.remove(force=True)
    assert not problems, "\n".join(problems)


def test_the_readme_is_one_page_and_starts_with_the_daemon():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    daemon = next(i for i, line in enumerate(lines)
                  if line.startswith("docker run -d --name registrator "))
    assert daemon < 60, f"the daemon's docker run line is at line {daemon + 1}"
    for command in ("bash scripts/demo", "bash scripts/test"):
        assert f"    {command}" in lines
