"""The invariant every fault scenario checks, computed independently of the daemon's code:
this host's entries in the store are exactly what the test's running containers should
produce (SPEC §2: one entry per published port, at 127.0.0.1 since daemons run with
--ip 127.0.0.1, named by the `registrator.name` label the tests set), with no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker
from harness import BUSYBOX_IMAGE, Daemon, wait_until

Entry = tuple[str, str, int, str]  # (name, address, port, container id)


def expected(client: docker.DockerClient, container_ids: Iterable[str]) -> set[Entry]:
    out = set()
    for cid in container_ids:
        try:
            attrs = client.api.inspect_container(cid)
        except docker.errors.NotFound:
            continue
        state = attrs["State"]
        if not state["Running"] or state["Paused"] or state.get("Restarting"):
            continue
        name = attrs["Config"]["Labels"]["registrator.name"]
        if attrs["HostConfig"]["NetworkMode"] == "host":
            port = int(attrs["Config"]["Labels"]["registrator.port"])
            out.add((name, "127.0.0.1", port, cid))
            continue
        for bindings in (attrs["NetworkSettings"]["Ports"] or {}).values():
            if bindings:
                out.add((name, "127.0.0.1", int(bindings[0]["HostPort"]), cid))
    return out


def actual(daemon: Daemon, container_ids: Iterable[str]) -> tuple[set[Entry], int]:
    """This host's entries of our containers, and how many duplicates there are."""
    ids = set(container_ids)
    entries = [(v["name"], v["address"], v["port"], v["container_id"])
               for v in daemon.services().values()
               if v.get("host") == daemon.hostname and v.get("container_id") in ids]
    dupes = sum(n - 1 for n in Counter(entries).values())
    return set(entries), dupes


def converged(daemon: Daemon, client: docker.DockerClient, ids: Iterable[str]) -> bool:
    ids = list(ids)
    got, dupes = actual(daemon, ids)
    return dupes == 0 and got == expected(client, ids)


def time_to_converge(daemon: Daemon, client: docker.DockerClient, ids: Iterable[str],
                     timeout: float, what: str) -> float:
    """Seconds until the store matches; fails past `timeout`. Printed for the report."""
    ids = list(ids)
    start = time.monotonic()
    wait_until(lambda: converged(daemon, client, ids), timeout=timeout, interval=0.02,
               message=f"the store to match the containers ({what})")
    took = time.monotonic() - start
    print(f"\n[converge] {what}: {took:.3f} s")  # noqa: T201 - the report asks for it
    return took


def web(containers: Any, name: str, labels: dict[str, str] | None = None,
        **kwargs: Any) -> Any:
    """A plain test service: one port published on loopback, named by label."""
    return containers.run("sleep 3600", ports={"80/tcp": ("127.0.0.1", None)},
                          labels={"registrator.name": name, **(labels or {})}, **kwargs)


class Churn:
    """A bounded loop starting and stopping containers (at most `live` at a time) in a
    thread, until `ops` operations are done or `stop()` is called."""

    def __init__(self, containers: Any, ops: int, live: int = 5, pause: float = 0.0) -> None:
        self.containers, self.ops, self.live, self.pause = containers, ops, live, pause
        self.done = 0
        self.running: list[Any] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> Churn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(120)

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "churn did not finish in time"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while self.done < self.ops and not self._halt.is_set():
                if len(self.running) < self.live and (self.done % 3 != 2 or not self.running):
                    self.running.append(web(self.containers, f"churn-{self.done}"))
                else:
                    self.running.pop(0).stop(timeout=0)
                self.done += 1
                if self.pause:
                    self._halt.wait(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc


class PrivateDockerd:
    """A dockerd of the test's own (own socket, data and bridge), so it can be restarted
    without touching the machine's daemon. Never `--bridge none`: a dockerd started that
    way deletes the host's docker0, which the main daemon needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exec_root = Path(f"/tmp/rgx{os.getpid()}")  # noqa: S108 - short: socket paths
        self.bridge = f"rgt{os.getpid() % 10000}"
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: docker.DockerClient | None = None

    def start(self) -> PrivateDockerd:
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        with (self.root / "dockerd.log").open("ab") as log:  # the child keeps its own copy
            self.proc = self._spawn(log)
        # The SDK asks the daemon for its API version as it is constructed: wait first.
        wait_until(self._answers, timeout=60, message="the private dockerd")
        self.client = docker.DockerClient(base_url=self.host)
        return self

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["dockerd", "--host", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.exec_root), "--pidfile", str(self.root / "docker.pid"),
             "--bridge", self.bridge, "--iptables=false",
             "--ip-masq=false", "--ip6tables=false", "--shutdown-timeout", "1"],
            stdout=log, stderr=log, start_new_session=True)

    def _answers(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
        return subprocess.run(["docker", "-H", self.host, "version"], capture_output=True,
                              check=False).returncode == 0

    def load(self, image: str = BUSYBOX_IMAGE) -> None:
        with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
            subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout,
                           check=True, capture_output=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        if self.client is not None:
            self.client.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            if self.client is not None and self.proc is not None and self.proc.poll() is None:
                for c in self.client.containers.list(all=True):
                    c.remove(force=True)
        finally:
            self.stop()
            subprocess.run(["ip", "link", "del", self.bridge], check=False)
            for mount in reversed(Path("/proc/mounts").read_text().splitlines()):
                point = mount.split()[1]
                if point.startswith((str(self.root), str(self.exec_root))):
                    subprocess.run(["umount", "-l", point], check=False)
            subprocess.run(["rm", "-rf", str(self.exec_root)], check=False)
