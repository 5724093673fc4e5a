"""docker_source: events as hints (dockerd's and Podman 4.3's shapes) and inspect answers
that mean "gone", without an engine (the real ones are in tests/integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registrator.docker_source import DockerSource, Hint, container_hint, slim
from registrator.errors import DockerUnavailableError

CID = "f9cb29158c2384307f3e9c5851d0eaa8d55b8c2927e35bacee44cf790f2fc4f1"
NET = "33588b553c2c6e9db92cf1bb7ed3e270c8ec488b0b78c16cf8cdb53d7f1f66ee"


def event(kind: str, action: str, actor: str, **attributes: str) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "status": action, "id": actor,
            "timeNano": 1_000_000_000, "Actor": {"ID": actor, "Attributes": attributes}}


@pytest.mark.parametrize(("raw", "expected"), [
    (event("container", "die", CID, exitCode="137"), Hint(CID, "die", 1.0)),
    (event("container", "died", CID), Hint(CID, "die", 1.0)),  # Podman's own name
    (event("container", "remove", CID), Hint(CID, "destroy", 1.0)),  # Podman's own name
    (event("container", "kill", CID, signal="15"), Hint(CID, "kill", 1.0, "15")),
    (event("container", "kill", CID), Hint(CID, "kill", 1.0)),  # Podman: no signal
    (event("container", "health_status: healthy", CID), Hint(CID, "health_status", 1.0)),
    (event("network", "connect", NET, container=CID), Hint(CID, "connect", 1.0)),  # dockerd
    (event("network", "disconnect", CID, name="web"), Hint(CID, "disconnect", 1.0)),  # Podman
    (event("network", "create", NET), None),
    (event("container", "exec_start: sh", CID), None),
    (event("container", "cleanup", CID), None),
    (event("image", "remove", CID), None),
    ("not an event", None),
])
def test_container_hint(raw, expected):
    assert container_hint(raw) == expected


class Response:
    def __init__(self, status: int, body: object) -> None:
        self.status = status
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()


class Canned:
    """Stands in for engine.Connections: every GET gets the same answer."""

    def __init__(self, response: Response) -> None:
        self.response = response

    def get(self, _path: str) -> tuple[int, bytes]:
        return self.response.status, self.response.data

    def close(self) -> None:
        return


def source(response: Response) -> DockerSource:
    src = DockerSource({"DOCKER_HOST": "unix:///nonexistent.sock"})
    src._connections = Canned(response)  # type: ignore[assignment]  # noqa: SLF001
    src._prefix = "/v1.41"  # noqa: SLF001 - the version is known: no /version asked
    return src


@pytest.mark.parametrize("response", [
    Response(404, {"message": "No such container: x"}),
    Response(500, {"cause": "no such container", "message": "no container with name or ID "
                   '"x" found: no such container', "response": 500}),
    Response(500, {"message": "no container with ID x found: no such container"}),
])
def test_inspect_of_a_gone_container_is_none(response):
    assert source(response).inspect("x") is None


@pytest.mark.parametrize("response", [
    Response(500, {"cause": "database is locked", "message": "boom", "response": 500}),
    Response(500, b"<html>oops</html>"),
    Response(200, [1, 2]),
])
def test_other_failures_are_docker_unavailable(response):
    with pytest.raises(DockerUnavailableError):
        source(response).inspect("x")


def test_an_engine_id_refused_by_a_socket_proxy_is_unknown_not_an_outage():
    assert source(Response(403, {"message": "forbidden by the proxy"})).engine_id() == ""
    assert source(Response(200, {"ID": "ENGINE"})).engine_id() == "ENGINE"
    with pytest.raises(DockerUnavailableError):
        source(Response(500, {"message": "boom"})).engine_id()


def test_slim_keeps_what_is_read_and_drops_the_rest():
    full = {"Id": "x", "Name": "/web", "GraphDriver": {"Data": {}}, "Mounts": [{}],
            "State": {"Running": True, "Health": {"Status": "healthy", "Log": ["big"] * 5}},
            "Config": {"Labels": {"a": "b"}, "Env": ["A=1"], "Cmd": ["sleep"], "Image": "i"},
            "HostConfig": {"NetworkMode": "bridge", "Binds": ["/x:/y"]},
            "NetworkSettings": {"Ports": {"80/tcp": None}, "Networks": {}, "SandboxKey": "k"}}
    assert slim(full) == {
        "Id": "x", "Name": "/web",
        "State": {"Running": True, "Health": {"Status": "healthy"}},
        "Config": {"Labels": {"a": "b"}, "Env": ["A=1"], "Image": "i"},
        "HostConfig": {"NetworkMode": "bridge"},
        "NetworkSettings": {"Ports": {"80/tcp": None}, "Networks": {}}}
    assert slim({"Id": "x"}) == {"Id": "x"}  # missing sections stay missing


def test_a_missing_docker_socket_says_to_mount_it(tmp_path):
    # The daemon's container started without `-v /var/run/docker.sock:...`: no file there.
    path = tmp_path / "docker.sock"
    source = DockerSource({"DOCKER_HOST": f"unix://{path}"}, timeout=2)
    with pytest.raises(DockerUnavailableError) as raised:
        source.ping()
    message = str(raised.value)
    assert f"no Docker socket at {path}" in message
    assert f"-v {path}:{path}:ro" in message  # what to add to `docker run`
    assert "DOCKER_HOST" in message
