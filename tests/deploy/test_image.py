"""The image, run exactly as README's `docker run` line says."""

from __future__ import annotations

import re
import shlex
import subprocess
import uuid
from pathlib import Path

from harness import free_port, wait_until

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_docker_run() -> str:
    text = README.read_text()
    block = re.search(r"<!-- docker-run -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert block, "README has no docker-run block"
    return block.group(1).replace("\\\n", " ")


def test_image_user_help_and_healthcheck_config(image, docker_client):
    attrs = docker_client.images.get(image).attrs["Config"]
    assert attrs["User"] == "10001:10001"
    assert attrs["Entrypoint"] == ["registrator"]
    assert attrs["Cmd"] == ["run"]
    assert attrs["Healthcheck"]["Test"] == ["CMD", "registrator", "healthcheck"]
    out = docker_client.containers.run(image, "--help", remove=True).decode()
    assert "run" in out
    assert "healthcheck" in out


def test_readme_docker_run_line(image, etcd, containers, docker_client):
    name = f"registrator-test-{uuid.uuid4().hex[:6]}"
    prefix = f"/t-{uuid.uuid4().hex[:8]}"
    metrics = free_port()
    line = readme_docker_run()
    assert line.strip().startswith("docker run -d --name registrator ")
    # The README line as written; only what keeps this test apart from others changes:
    # its name, the etcd it talks to, and -e settings added before the image.
    line = line.replace("--name registrator ", f"--name {name} ")
    line = line.replace("http://127.0.0.1:2379", etcd.endpoint)
    extra = " ".join(f"-e {k}={v}" for k, v in {
        "REGISTRATOR_PREFIX": prefix, "REGISTRATOR_IP": "127.0.0.1",
        "REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{metrics}",
        "REGISTRATOR_LOG_LEVEL": "debug"}.items())
    line = line.replace(f" {image}", f" -l registrator-test=deploy {extra} {image}")
    cid = subprocess.run(["bash", "-c", line], check=True, capture_output=True,
                         text=True).stdout.strip()
    registrator = docker_client.containers.get(cid)
    try:
        app = containers.run(ports={"80/tcp": ("127.0.0.1", None)},
                             labels={"registrator.name": "deployed"})
        view = etcd.view
        wait_until(lambda: any(v["container_id"] == app.id
                               for v in view.services(prefix).values()),
                   timeout=30, message="the app registered by the containerised daemon")
        assert registrator.exec_run("registrator healthcheck").exit_code == 0
        app.stop(timeout=1)
        wait_until(lambda: not any(v["container_id"] == app.id
                                   for v in view.services(prefix).values()),
                   message="the app's entry removed on stop")
        assert view.keys(prefix + "/hosts/")  # the host record is there until docker stop
        registrator.stop(timeout=20)  # SIGTERM to PID 1
        registrator.reload()
        assert registrator.attrs["State"]["ExitCode"] == 0
        assert view.keys(prefix + "/") == set()
        logs = registrator.logs().decode()
        assert "lease revoked" in logs
    finally:
        registrator.remove(force=True)
        view.client.delete_prefix(prefix + "/")


def test_systemd_unit_runs_the_readme_container_and_stops_with_sigterm():
    unit = (README.parent / "deploy" / "registrator.service").read_text()
    exec_start = re.search(r"^ExecStart=(.*?)'$", unit, re.MULTILINE | re.DOTALL)
    assert exec_start
    command = exec_start.group(1).replace("\\\n", " ")
    args = shlex.split(command.split("exec ", 1)[1])
    # The same essentials as the README line: host network, socket read-only, its group.
    assert {"--network", "host"} <= set(args)
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in args
    assert "--group-add" in args
    assert re.search(r"^KillSignal=SIGTERM$", unit, re.MULTILINE)
    assert re.search(r"^Restart=on-failure$", unit, re.MULTILINE)
    assert re.search(r"^ExecStop=/usr/bin/docker stop", unit, re.MULTILINE)
