"""Docker reached the way a locked-down host offers it: a TCP endpoint in front of the
socket (what a socket proxy provides), via DOCKER_HOST."""

from __future__ import annotations

from harness import Proxy, wait_until


def test_docker_host_tcp_through_a_proxy(start_daemon, containers):
    proxy = Proxy("/var/run/docker.sock")  # listens on 127.0.0.1:<free port>
    try:
        daemon = start_daemon(env={"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}"})
        c = containers.run(ports={"80/tcp": ("127.0.0.1", None)})
        wait_until(lambda: c.id in {v["container_id"] for v in daemon.mine(containers).values()},
                   message="registered through DOCKER_HOST=tcp://")
        started = daemon.logged("starting")[0]
        assert started["docker"] == f"tcp://127.0.0.1:{proxy.port}"
    finally:
        proxy.cut()
