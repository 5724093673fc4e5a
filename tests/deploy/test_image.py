"""The image, run exactly as README's `docker run` line says; the systemd unit's command."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import uuid

from deploy_support import README_IMAGE, ROOT
from harness import free_port, wait_until

README = ROOT / "README.md"
UNIT = ROOT / "deploy" / "registrator.service"


def readme_docker_run() -> str:
    text = README.read_text()
    block = re.search(r"<!-- docker-run -->\s*(?:<!--.*?-->\s*)?```sh\n(.*?)```", text, re.DOTALL)
    assert block, "README has no docker-run block"
    return block.group(1).replace("\\\n", " ")


def dockerfile_user() -> str:
    users = re.findall(r"^USER\s+(\S+)\s*$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert users, "Dockerfile sets no USER"
    return users[-1]


def isolation_env(etcd_prefix: str) -> dict[str, str]:
    """What keeps a test's daemon apart from others on this shared dockerd and etcd."""
    return {"REGISTRATOR_PREFIX": etcd_prefix, "REGISTRATOR_IP": "127.0.0.1",
            "REGISTRATOR_HOSTNAME": f"host-{uuid.uuid4().hex[:6]}",
            "REGISTRATOR_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "REGISTRATOR_LOG_LEVEL": "debug"}


def registered(view, prefix: str, container_id: str) -> bool:
    return any(v["container_id"] == container_id for v in view.services(prefix).values())


def test_image_user_entrypoint_help_and_healthcheck(image, docker_client):
    config = docker_client.images.get(image).attrs["Config"]
    assert config["User"] == dockerfile_user() == "10001:10001"
    assert config["Entrypoint"] == ["registrator"]
    assert config["Cmd"] == ["run"]
    assert config["Healthcheck"]["Test"] == ["CMD", "registrator", "healthcheck"]
    out = docker_client.containers.run(image, "--help", remove=True).decode()
    assert "run" in out
    assert "healthcheck" in out


def test_readme_docker_run_line(image, etcd, containers, docker_client, docker_gid):
    name = f"registrator-test-{uuid.uuid4().hex[:6]}"
    prefix = f"/t-{uuid.uuid4().hex[:8]}"
    line = readme_docker_run()
    assert line.strip().startswith("docker run -d --name registrator ")
    assert line.rstrip().endswith(f" {README_IMAGE}")
    assert f"IMAGE=${{IMAGE:-{README_IMAGE}}}" in (ROOT / "scripts" / "build-image").read_text()
    # The README line as written; only what keeps this test apart from others changes:
    # its name, the etcd it talks to, -e settings added before the image, and the image's
    # tag (this checkout's build).
    line = line.replace("--name registrator ", f"--name {name} ")
    line = line.replace("http://127.0.0.1:2379", etcd.endpoint)
    extra = " ".join(f"-e {k}={v}" for k, v in isolation_env(prefix).items())
    line = line.replace(f" {README_IMAGE}", f" -l registrator-test=deploy {extra} {image}")
    cid = subprocess.run(["bash", "-c", line], check=True, capture_output=True,
                         text=True).stdout.strip()
    registrator = docker_client.containers.get(cid)
    view = etcd.view
    try:
        app = containers.run(ports={"80/tcp": ("127.0.0.1", None)},
                             labels={"registrator.name": "deployed"})
        wait_until(lambda: registered(view, prefix, app.id), timeout=30,
                   message="the app registered by the containerised daemon")
        # PID 1 is the daemon itself, as the Dockerfile's user, with the socket's group.
        status = registrator.exec_run(["cat", "/proc/1/status", "/proc/1/cmdline"])
        assert status.exit_code == 0
        text = status.output.decode(errors="replace")
        uid, gid = dockerfile_user().split(":")
        assert re.search(rf"^Uid:\s+{uid}\s", text, re.MULTILINE), text
        assert re.search(rf"^Gid:\s+{gid}\s", text, re.MULTILINE), text
        assert docker_gid in re.search(r"^Groups:(.*)$", text, re.MULTILINE).group(1).split()
        assert "/opt/registrator/bin/registrator\0run" in text
        health = registrator.exec_run("registrator healthcheck")
        assert health.exit_code == 0, health.output
        app.stop(timeout=1)
        wait_until(lambda: not registered(view, prefix, app.id),
                   message="the app's entry removed on stop")
        assert view.keys(prefix + "/hosts/")  # the host record is there until docker stop
        registrator.stop(timeout=20)  # SIGTERM to PID 1
        registrator.reload()
        assert registrator.attrs["State"]["ExitCode"] == 0
        assert view.keys(prefix + "/") == set()
        assert "lease revoked" in registrator.logs().decode()
    finally:
        registrator.remove(force=True)
        view.client.delete_prefix(prefix + "/")


def systemd_unescape(text: str) -> str:
    """What systemd hands to the program: `%%` is `%`, `$$` is `$`."""
    return text.replace("%%", "%").replace("$$", "$")


def unit_lines(key: str) -> list[str]:
    text = UNIT.read_text().replace("\\\n", " ")
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


def test_systemd_unit_is_valid_and_restarts_on_failure_stops_with_sigterm():
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(UNIT)],
                                capture_output=True, text=True, check=False)
        assert verify.returncode == 0, verify.stderr
        assert UNIT.name not in verify.stderr, verify.stderr
    assert unit_lines("KillSignal") == ["SIGTERM"]
    assert unit_lines("Restart") == ["on-failure"]
    assert unit_lines("ExecStop")[0].startswith("/usr/bin/docker stop ")


def test_systemd_unit_command_runs_and_stops_cleanly(image, etcd, containers, tmp_path):
    """ExecStart as systemd runs it (a foreground `docker run`), then ExecStop: the daemon
    registers, and stopping exits 0 (for systemd a clean stop, not a failure to restart)."""
    name = f"registrator-test-{uuid.uuid4().hex[:6]}"
    prefix = f"/t-{uuid.uuid4().hex[:8]}"
    env_file = tmp_path / "registrator.env"
    settings = {"REGISTRATOR_ETCD_ENDPOINTS": etcd.endpoint, **isolation_env(prefix)}
    [exec_start] = unit_lines("ExecStart")
    [exec_stop] = unit_lines("ExecStop")
    environment = dict(item.split("=", 1) for line in unit_lines("Environment")
                       for item in shlex.split(line))
    assert "REGISTRATOR_IMAGE" in environment
    # /etc/default/registrator is the unit's EnvironmentFile (it may name another image)
    # and the container's --env-file.
    environment = {**environment, **settings, "REGISTRATOR_IMAGE": image}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in environment.items()))

    def as_here(command: str) -> list[str]:
        command = systemd_unescape(command).replace("/etc/default/registrator", str(env_file))
        command = command.replace("--name registrator ", f"--name {name} --label "
                                  "registrator-test=deploy ")
        return [name if arg == "registrator" else arg for arg in shlex.split(command)]

    start = as_here(exec_start)
    assert start[:2] == ["/bin/sh", "-c"]
    log_path = tmp_path / "unit.log"  # what journald would get
    with log_path.open("wb") as log:
        proc = subprocess.Popen(start, env={"PATH": "/usr/bin:/bin", **environment},
                                stdout=log, stderr=subprocess.STDOUT)
    view = etcd.view
    try:
        app = containers.run(ports={"80/tcp": ("127.0.0.1", None)},
                             labels={"registrator.enable": "true"})
        wait_until(lambda: registered(view, prefix, app.id), timeout=30,
                   message="the app registered by the unit's container")
        subprocess.run(as_here(exec_stop), check=True, capture_output=True, timeout=40)
        assert proc.wait(timeout=30) == 0, log_path.read_text(errors="replace")[-3000:]
        assert view.keys(prefix + "/") == set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        view.client.delete_prefix(prefix + "/")
