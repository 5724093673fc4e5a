"""Scenario 4: dockerd restarted under the daemon. A private dockerd started by the test, so
restarting it disturbs nothing else on the machine."""

from __future__ import annotations

import os

import pytest
from fault_support import PrivateDockerd, time_to_converge
from harness import BUSYBOX_IMAGE, free_port, wait_until


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="running a private dockerd needs root")
def test_dockerd_restart_reconnects_and_matches(start_daemon, tmp_path):
    dockerd = PrivateDockerd(tmp_path)
    try:
        dockerd.start()
        dockerd.load()
        daemon = start_daemon(env={"DOCKER_HOST": dockerd.host})

        def host_service(name, **kwargs):
            # No bridge traffic: host networking, the port named by label.
            return dockerd.client.containers.run(
                BUSYBOX_IMAGE, "sleep 3600", detach=True, network_mode="host",
                labels={"registrator.name": name, "registrator.port": str(free_port())},
                **kwargs)

        keep = host_service("keep", restart_policy={"Name": "always"})
        gone = host_service("gone")
        ids = [keep.id, gone.id]
        time_to_converge(daemon, dockerd.client, ids, 10, "on the private dockerd")
        dockerd.restart()
        wait_until(lambda: dockerd.client.containers.get(keep.id).status == "running",
                   timeout=30, message="the restart-policy container back")
        time_to_converge(daemon, dockerd.client, ids, 20, "dockerd restarted")
        assert daemon.logged("docker event stream reconnected; full reconcile")
        assert {v["container_id"] for v in daemon.services().values()} >= {keep.id}
        assert gone.id not in {v["container_id"] for v in daemon.services().values()}
    finally:
        dockerd.destroy()
