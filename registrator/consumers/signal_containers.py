"""Reload by signal through the Docker API (docker-gen #77, #209): a render container needs
no docker CLI, only the socket. Docker's exceptions end here, as an Outcome."""

from __future__ import annotations

import docker
import docker.errors

from registrator.consumers.process import Outcome


def signal_containers(label: str, signal_name: str, timeout: float = 10.0) -> Outcome:
    """Send SIG<signal_name> to every running container labelled `label` (LABEL=VALUE)."""
    try:
        client = docker.from_env(timeout=int(max(timeout, 1)))
    except docker.errors.DockerException as exc:
        return Outcome(ok=False, detail=f"docker unreachable: {exc}")
    try:
        found = client.containers.list(filters={"label": label, "status": "running"})
        if not found:
            return Outcome(ok=False, detail=f"no running container labelled {label}")
        for container in found:
            container.kill(signal=f"SIG{signal_name}")
    except docker.errors.DockerException as exc:
        return Outcome(ok=False, detail=f"signalling containers labelled {label}: {exc}")
    finally:
        client.close()
    return Outcome(ok=True)
