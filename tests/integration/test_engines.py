"""Every lifecycle case on dockerd and on Podman 4.3's Docker-compatible API (issue 13): stop,
crash, rm -f, pause, restart, network changes, SIGTERM of the daemon. `--resync 0` and a long
TTL: only the event stream can make the store follow."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from harness import BUSYBOX_IMAGE, TEST_LABEL, Containers, terminate, wait_until

LOCAL = ("127.0.0.1", None)
EVENTS_ONLY = ("--ttl", "120", "--resync", "0")


@dataclass
class Engine:
    name: str
    client: docker.DockerClient
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def podman_engine(tmp_path_factory) -> Iterator[Engine]:
    """`podman system service` on a socket of its own, for this module."""
    if shutil.which("podman") is None:
        if os.environ.get("CI"):
            pytest.fail("podman is not installed; scripts/setup installs it")
        pytest.skip("podman is not installed; scripts/setup installs it")
    _load_image()
    sock = Path(f"/tmp/rt13-{uuid.uuid4().hex[:8]}.sock")  # noqa: S108 - short socket path
    log = tmp_path_factory.mktemp("podman") / "service.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                                stdout=out, stderr=out, start_new_session=True)
    url = f"unix://{sock}"
    try:
        wait_until(lambda: proc.poll() is None and sock.exists(), timeout=30,
                   message=f"the podman service ({log})")
        client = wait_until(lambda: _client(url), timeout=30, message="podman to answer")
        yield Engine("podman", client, {"DOCKER_HOST": url})
        client.close()
    finally:
        terminate(proc, grace=30)
        sock.unlink(missing_ok=True)


def _client(url: str) -> docker.DockerClient:
    client = docker.DockerClient(base_url=url, version="1.41")
    client.ping()
    return client


def _load_image() -> None:
    """scripts/setup loads it; a machine set up before Podman was added gets it here."""
    if subprocess.run(["podman", "image", "exists", BUSYBOX_IMAGE], check=False).returncode:
        with subprocess.Popen(["docker", "save", BUSYBOX_IMAGE], stdout=subprocess.PIPE) as save:
            subprocess.run(["podman", "load", "-q"], stdin=save.stdout, check=True,
                           capture_output=True)


@pytest.fixture(params=["docker", "podman"])
def engine(request, docker_client) -> Engine:
    if request.param == "docker":
        return Engine("docker", docker_client)
    return request.getfixturevalue("podman_engine")


@pytest.fixture
def made(engine) -> Iterator[Containers]:
    """Containers on the engine under test, removed by id at the end."""
    out = Containers(engine.client)
    yield out
    out.remove_all()


def ids_of(daemon, made) -> set[str]:
    return {v["container_id"] for v in daemon.mine(made).values()}


def test_lifecycle_follows_events(start_daemon, engine, made):
    daemon = start_daemon(*EVENTS_ONLY, env=engine.env)
    web = {}
    for case in ("stop", "crash", "rm", "pause", "restart"):
        command = "sh -c 'sleep 4; exit 3'" if case == "crash" else "sleep 3600"
        web[case] = made.run(command, ports={"80/tcp": LOCAL},
                             labels={"registrator.name": f"{case}-{engine.name}"})
    wait_until(lambda: ids_of(daemon, made) == {c.id for c in web.values()}, timeout=15,
               message="every container registered")
    web["stop"].stop(timeout=1)
    web["rm"].remove(force=True)
    web["pause"].pause()
    gone = {web[c].id for c in ("stop", "rm", "pause")}
    wait_until(lambda: not ids_of(daemon, made) & gone, message="stop, rm -f, pause removed")
    wait_until(lambda: web["crash"].id not in ids_of(daemon, made), timeout=15,
               message="the crashed container removed")
    web["pause"].unpause()
    wait_until(lambda: web["pause"].id in ids_of(daemon, made), message="back on unpause")
    before = _started(web["restart"])
    web["restart"].restart(timeout=1)
    assert _started(web["restart"]) != before
    wait_until(lambda: web["restart"].id in ids_of(daemon, made), timeout=15,
               message="registered after the restart")
    time.sleep(0.5)
    assert ids_of(daemon, made) == {web["pause"].id, web["restart"].id}
    assert daemon.proc.poll() is None


def _started(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def test_daemon_sigterm_removes_its_entries(start_daemon, engine, made):
    daemon = start_daemon(*EVENTS_ONLY, env=engine.env)
    made.run(ports={"80/tcp": LOCAL})
    wait_until(lambda: daemon.mine(made), message="an entry")
    assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.etcd.view.keys(daemon.prefix + "/") == set()


def test_network_events_move_the_internal_address(start_daemon, engine, made):
    net = engine.client.networks.create(f"rt13-{uuid.uuid4().hex[:8]}",
                                        labels={TEST_LABEL: "net"})
    try:
        daemon = start_daemon("--internal", "--explicit", *EVENTS_ONLY, env=engine.env)
        c = made.run("sleep 3600", ports={"80/tcp": LOCAL},
                     labels={"registrator.enable": "true"})
        wait_until(lambda: c.id in ids_of(daemon, made), message="registered on one network")
        net.connect(c)  # two networks and no label: a warning, no entry
        wait_until(lambda: c.id not in ids_of(daemon, made), message="removed on connect")
        net.disconnect(c)
        wait_until(lambda: c.id in ids_of(daemon, made), message="back on disconnect")
    finally:
        made.remove_all()
        net.remove()
