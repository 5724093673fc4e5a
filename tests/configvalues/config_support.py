"""Helpers of the configuration-value tests: `registrator config ...` as a real subprocess,
and an etcd that also speaks the v2 API (the real crypt CLI knows only that one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from harness import ETCD_IMAGE, TEST_LABEL, EtcdView, wait_until
from testcontainers.core.container import DockerContainer

CRYPT = "crypt-xordataexchange"


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


def one_line(result: Result) -> str:
    """The single line a failing command writes to stderr."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without REGISTRATOR_* (a developer's own settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRATOR_")}
    return {**env, **extra}


def config_cmd(endpoint: str, prefix: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "registrator", "config", *args,
            "--etcd-endpoints", endpoint, "--prefix", prefix]


def run_config(endpoint: str, prefix: str, *args: str, stdin: bytes | None = None,
               env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """`registrator config ARGS --etcd-endpoints E --prefix P`. For `exec`, put the program
    after `--` in ARGS: the store flags are appended, so `exec` takes them as the program's;
    use config_cmd() and place them yourself."""
    done = subprocess.run(config_cmd(endpoint, prefix, *args), input=stdin,
                          capture_output=True, env=env or clean_env(), timeout=timeout,
                          check=False)
    return Result(done.returncode, done.stdout, done.stderr.decode())


def exec_cmd(endpoint: str, prefix: str, app: str, *options: str,
             program: list[str]) -> list[str]:
    return [sys.executable, "-m", "registrator", "config", "exec", app, *options,
            "--etcd-endpoints", endpoint, "--prefix", prefix, "--", *program]


class V2EtcdServer:
    """etcd from the local image with the v2 API enabled, on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.container = (
            DockerContainer(ETCD_IMAGE)
            .with_command("--name node --data-dir /tmp/etcd --enable-v2 "
                          "--listen-client-urls http://0.0.0.0:2379 "
                          "--advertise-client-urls http://127.0.0.1:2379")
            .with_kwargs(labels={TEST_LABEL: "etcd"})
        )
        self.container.ports = {"2379/tcp": ("127.0.0.1", None)}
        self.port = 0

    def start(self) -> V2EtcdServer:
        self.container.start()
        self.port = int(self.container.get_exposed_port(2379))
        self.view = EtcdView(self.port)
        wait_until(self.view.healthy, timeout=30, message="etcd to answer")
        wait_until(self._v2_answers, timeout=30, message="etcd's v2 API to answer")
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _v2(self, key: str, data: bytes | None = None) -> bytes:
        # Always http://127.0.0.1:<port> of our own container.
        request = urllib.request.Request(f"{self.endpoint}/v2/keys{key}", data=data,  # noqa: S310
                                         method="GET" if data is None else "PUT")
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
            return bytes(reply.read())

    def _v2_answers(self) -> bool:
        return bool(self._v2("/"))

    def v2_get(self, key: str) -> str | None:
        try:
            node = json.loads(self._v2(key))["node"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return node.get("value")

    def v2_put(self, key: str, value: str) -> None:
        body = urllib.parse.urlencode({"value": value}).encode()
        self._v2(key, body)

    def crypt(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        command, *rest = args
        return subprocess.run([CRYPT, command, "-endpoint", self.endpoint, *rest],
                              capture_output=True, timeout=timeout, check=False)

    def stop(self) -> None:
        self.view.close()
        self.container.stop()
