"""Settings every test run needs (set before testcontainers is imported anywhere), and the
fixtures every test directory that needs dockerd and etcd shares. Tests outside tests/unit
are marked `integration`."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# No image registry is reachable: the reaper image cannot be pulled, and this machine has
# /.dockerenv, so without these testcontainers would hand out the bridge gateway address.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

# Imported after the environment above: testcontainers reads it on import.
import docker
from harness import Containers, Daemon, EtcdServer, new_prefix
from registrator_image import IMAGE, ROOT
from zk_harness import ZooKeeperServer, zookeeper_available

UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT not in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        if os.environ.get("CI"):
            raise  # in CI a missing dockerd is a broken setup, not a reason to skip
        pytest.skip(f"no Docker daemon reachable ({exc}); run scripts/setup first")
    yield client
    client.close()


@pytest.fixture(scope="session")
def etcd(docker_client: docker.DockerClient) -> Iterator[EtcdServer]:
    """One etcd for the session; tests keep apart by each using a prefix of their own."""
    server = EtcdServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperServer]:
    """One ZooKeeper for the session (SPEC §10), started from Debian's jars on a free
    loopback port and stopped by its pid; tests keep apart by prefix, like on etcd."""
    problem = zookeeper_available()
    if problem is not None:
        if os.environ.get("CI"):
            raise RuntimeError(problem)
        pytest.skip(problem)
    server = ZooKeeperServer().start()
    yield server
    server.stop()


@pytest.fixture
def store(request: pytest.FixtureRequest) -> EtcdServer | ZooKeeperServer:
    """The store server a test runs against: etcd, unless parametrized with
    zk_harness.both_stores."""
    kind = getattr(request, "param", "etcd")
    return request.getfixturevalue("zookeeper" if kind == "zookeeper" else "etcd")  # type: ignore[no-any-return]


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[Containers]:
    made = Containers(docker_client)
    yield made
    made.remove_all()


@pytest.fixture
def start_daemon(store: EtcdServer | ZooKeeperServer, tmp_path: Path,
                 ) -> Iterator[Callable[..., Daemon]]:
    """Start daemons with a prefix and hostname of their own; all are killed at the end and
    the prefix emptied."""
    started: list[Daemon] = []
    prefix = new_prefix()
    hostname = f"host-{uuid.uuid4().hex[:6]}"

    def start(*args: str, prefix: str = prefix, hostname: str = hostname,
              server: EtcdServer | ZooKeeperServer = store, ready: bool = True,
              env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(server, prefix, hostname, tmp_path, list(args), env)
        started.append(daemon)
        return daemon.wait_ready() if ready else daemon

    yield start
    for daemon in started:
        daemon.kill()
    try:
        store.view.delete_prefix(prefix + "/")
    except Exception:  # noqa: BLE001 - cleanup of a store a test may have stopped
        return


# The image, built once per session the way an operator builds it (scripts/build-image), its
# size and build time reported in the test output (deploy and documentation tests).
@pytest.fixture(scope="session")
def image(docker_client: docker.DockerClient, request: pytest.FixtureRequest) -> str:
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
