"""The scripts a first user runs: what the demo installs, and the image build on a machine
without the development venv."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

from registrator_image import IMAGE

ROOT = Path(__file__).resolve().parents[2]


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_demo_installs_only_what_the_demo_needs(tmp_path, docker_client):
    # A machine without python3-venv (as dpkg reports it): setup asks apt for packages.
    # apt-get and dpkg are stand-ins on PATH that record what was asked; the rest is real.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    fake(bin_dir, "dpkg", "exit 1")
    fake(bin_dir, "apt-get", f'echo "$@" >> {asked}')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SKIP_VENV": "1"}
    assert "bash scripts/setup --demo\n" in (ROOT / "scripts" / "demo").read_text()
    subprocess.run(["bash", "scripts/setup", "--demo"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    install = [line.split() for line in asked.read_text().splitlines() if "install" in line]
    assert len(install) == 1
    packages = {word for word in install[0] if not word.startswith("-") and word != "install"}
    assert packages == {"docker.io", "etcd-server", "etcd-client", "busybox-static", "haproxy",
                        "python3-venv"}


def test_build_image_runs_without_the_dev_venv(tmp_path, docker_client):
    env = {**os.environ, "IMAGE": IMAGE, "VENV": str(tmp_path / "no-venv")}
    proc = subprocess.run(["bash", "scripts/build-image"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"built {IMAGE}" in proc.stdout


def reload_labels(file: Path, **env: str) -> tuple[str, str]:
    """(what render signals, what HAProxy is labelled), from `docker-compose config`."""
    text = subprocess.run(["docker-compose", "-f", str(file), "config"], cwd=ROOT,
                          env={**os.environ, "DOCKER_GID": "1", **env}, capture_output=True,
                          text=True, check=True, timeout=60).stdout
    signalled = re.search(r"--reload-container=org\.registrator\.example\.lb=(\S+)", text)
    labelled = re.search(r"^\s+org\.registrator\.example\.lb: (\S+)$", text, re.MULTILINE)
    assert signalled, text
    assert labelled, text
    return signalled.group(1), labelled.group(1)


def test_the_haproxy_examples_render_signals_only_its_own_haproxy():
    # Two copies of the example on one host (two projects, two LB_PORTs): each render's
    # --reload-container must match its own HAProxy's label and not the other's.
    file = ROOT / "examples" / "haproxy" / "compose.yaml"
    first = reload_labels(file, LB_PORT="8080")
    second = reload_labels(file, LB_PORT="8081")
    assert first[0] == first[1]
    assert second[0] == second[1]
    assert first[0] != second[0]
