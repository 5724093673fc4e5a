"""Helpers of the consumers' integration tests: `registrator ls/watch/render` as real
subprocesses, a real HAProxy of the test's own, and a bounded HTTP client loop."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import JsonLog, terminate, wait_until

ROOT = Path(__file__).resolve().parents[2]
# Debian puts it in /usr/sbin, which is not on every user's PATH.
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRATOR_")}


def cli(*args: str, timeout: float = 60, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registrator", *args], capture_output=True,
                          text=True, timeout=timeout, env={**CLEAN_ENV, **(env or {})},
                          check=False)


def put_entry(etcd: Any, prefix: str, name: str, sid: str, port: int, **extra: Any
              ) -> dict[str, Any]:
    record = {"version": 1, "name": name, "id": sid, "address": "127.0.0.1", "port": port,
              "protocol": "tcp", "tags": [], "meta": {}, "host": "h1", "container_id": "c",
              "container_name": "/c", "image": "busybox", "health": "none",
              "registered_at": "2026-01-01T00:00:00.000Z", **extra}
    etcd.view.put(f"{prefix}/services/{name}/{sid}", json.dumps(record))
    return record


class Process(JsonLog):
    """A `registrator <command>` subprocess; stdout and stderr in files of its own."""

    def __init__(self, log_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        tag = uuid.uuid4().hex[:6]
        self.out_path = log_dir / f"{args[0]}-{tag}.out"
        self.log_path = log_dir / f"{args[0]}-{tag}.log"
        self._out, self._log = self.out_path.open("w"), self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "registrator", *args],
                                     stdout=self._out, stderr=self._log,
                                     env={**CLEAN_ENV, **(env or {})})

    def lines(self) -> list[str]:
        return self.out_path.read_text().splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            self._out.close()
            self._log.close()


class HAProxy:
    """Our own HAProxy in master-worker mode, on loopback ports, with its own pid file.
    Never touches a system one: it is stopped by the pid of the master we started."""

    def __init__(self, cfg: Path, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.pidfile = cfg.with_suffix(".pid")
        self.log = cfg.with_suffix(".log").open("w")
        self.proc = subprocess.Popen([HAPROXY, "-W", "-f", str(cfg), "-p", str(self.pidfile)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**CLEAN_ENV, **(env or {})})
        wait_until(lambda: self.pidfile.exists() and self.pidfile.read_text().strip(),
                   message="haproxy to write its pid file")
        self.reloads = 0

    @property
    def reload_cmd(self) -> str:
        return f"kill -USR2 {self.proc.pid}"

    def stop(self) -> None:
        terminate(self.proc)
        self.log.close()


def remount(path: Path, mode: str) -> None:
    """`ro` or `rw`: a read-only file system appearing (and going) under a running render;
    `path` is a tmpfs the test mounted (the `tmpfs` fixture)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def get(port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


class ClientLoop:
    """A bounded client: `rate` requests a second for at most `seconds`, loopback only; it
    stops by itself. Records every failure (an exception or a status other than 200)."""

    def __init__(self, port: int, rate: float = 20, seconds: float = 15) -> None:
        self.port, self.rate, self.seconds = port, rate, seconds
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ClientLoop:
        self._thread.start()
        return self

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and not self._stop.is_set():
            try:
                status, body = get(self.port)
            except OSError as exc:
                self.failures.append(f"{time.monotonic():.3f} {exc!r}")
            else:
                if status == 200:
                    self.ok += 1
                    self.bodies.add(body.strip())
                else:
                    self.failures.append(f"{time.monotonic():.3f} HTTP {status}")
            self._stop.wait(1 / self.rate)

    def join(self) -> None:
        self._thread.join(self.seconds + 10)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(10)


# Fixtures shared by the consumers', serve's and serve's DNS tests (their conftests import
# them): subprocesses and HAProxy instances stopped by their own pid at the end.
@pytest.fixture
def consumer(tmp_path: Path) -> Any:
    started: list[Process] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Process:
        process = Process(tmp_path, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def haproxy() -> Any:
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is not installed (scripts/setup installs it)")
    started: list[HAProxy] = []

    def start(cfg: Path, env: dict[str, str] | None = None) -> HAProxy:
        proxy = HAProxy(cfg, env)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
