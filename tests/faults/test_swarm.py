"""Swarm task names (SPEC §3, issue 13) on a real single-node Swarm. `docker swarm init` runs
only on a private dockerd of the test's own: never on the machine's shared one."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from fault_support import PrivateDockerd
from harness import BUSYBOX_IMAGE, wait_until

GWBRIDGE = Path("/sys/class/net/docker_gwbridge")


def swarm(dockerd: PrivateDockerd, *args: str) -> str:
    done = subprocess.run(["docker", "-H", dockerd.host, *args], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout.strip()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="running a private dockerd needs root")
def test_swarm_tasks_register_under_their_service_name(start_daemon, tmp_path):
    dockerd = PrivateDockerd(tmp_path)
    had_gwbridge = GWBRIDGE.exists()  # Swarm creates this host bridge; ours to remove after
    service = f"rt13-{uuid.uuid4().hex[:6]}"
    try:
        dockerd.start()
        swarm(dockerd, "swarm", "init", "--advertise-addr", "127.0.0.1")
        dockerd.load()
        daemon = start_daemon(env={"DOCKER_HOST": dockerd.host})
        # mode=host: the task's own container publishes the port (ingress ports are not in
        # a container's inspect data), on a random host port.
        swarm(dockerd, "service", "create", "--detach", "--name", service, "--replicas", "2",
              "--publish", "mode=host,target=80,published=0", BUSYBOX_IMAGE, "sleep", "3600")

        def entries():
            return {k: v for k, v in daemon.services().items() if v["name"] == service}

        found = wait_until(lambda: len(entries()) == 2 and entries(), timeout=60,
                           message="two task entries under the service name")
        tasks = swarm(dockerd, "service", "ps", "--no-trunc", "--format",
                      "{{.Name}}.{{.ID}}", service).splitlines()
        assert {v["id"] for v in found.values()} == {
            f"{daemon.hostname}:{task}:80" for task in tasks}
        swarm(dockerd, "service", "rm", service)
        wait_until(lambda: not entries(), timeout=30, message="entries gone with the service")
    finally:
        subprocess.run(["docker", "-H", dockerd.host, "swarm", "leave", "--force"],
                       capture_output=True, check=False, timeout=60)
        dockerd.destroy()
        if not had_gwbridge and GWBRIDGE.exists():
            subprocess.run(["ip", "link", "del", "docker_gwbridge"], check=False)
