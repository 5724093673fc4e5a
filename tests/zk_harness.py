"""A real ZooKeeper for the tests (Debian's zookeeperd jars, standalone, on a free loopback
port with a data directory of its own, stopped by its pid), and the tests' own view of it
through kazoo directly: like the etcd view, kept apart from the daemon's store module."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kazoo.protocol.connection
import kazoo.retry
import pytest
from harness import free_port, readable_entries, wait_until
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, NotEmptyError

# kazoo's connection thread draws from the global `random` on every loop (ping jitter); a
# session-long client in the pytest process would then change the global random state under
# hypothesis, which fails its tests ("Do not use the random module inside strategies").
# The tests' kazoo clients get a generator of their own.
kazoo.protocol.connection.random = random.Random()  # type: ignore[attr-defined]  # noqa: S311
kazoo.retry.random = random.Random()  # type: ignore[attr-defined]  # noqa: S311

CONF_DIR = Path("/etc/zookeeper/conf")
# Tests marked with this run once per store (SPEC §10: the same behaviour on both); the
# `store` fixture (conftest.py) gives the server, and `start_daemon` runs against it.
both_stores = pytest.mark.parametrize("store", ["etcd", "zookeeper"], indirect=True)
JARS = Path("/usr/share/java")


def zookeeper_available() -> str | None:
    """Why no ZooKeeper can be started here, or None."""
    if shutil.which("java") is None:
        return "no java (apt-get install zookeeperd)"
    if not any(JARS.glob("zookeeper*.jar")):
        return "no ZooKeeper jars in /usr/share/java (apt-get install zookeeperd)"
    return None


class ZooKeeperServer:
    """Standalone ZooKeeper. tickTime 500 ms so sessions may be as short as 1 s; the largest
    session timeout is raised so `--ttl 30` is what the daemon gets."""

    kind = "zookeeper"

    def __init__(self, port: int | None = None, *, extra_config: str = "",
                 auth: tuple[str, str] | None = None) -> None:
        self.port = port or free_port()
        # Lines added to zoo.cfg (e.g. enforce.auth.enabled=true), and the digest user:password
        # the tests' own view then connects with.
        self.extra_config = extra_config
        self.auth = auth
        self.dir = Path(tempfile.mkdtemp(prefix="registrator-zk-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.view = ZkView(self)

    def start(self) -> ZooKeeperServer:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(f"tickTime=500\ndataDir={data}\nclientPort={self.port}\n"
                       "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                       "minSessionTimeout=1000\nmaxSessionTimeout=120000\n"
                       "4lw.commands.whitelist=ruok\n" + self.extra_config)
        jars = ":".join(str(p) for p in sorted(JARS.glob("*.jar")))
        log = (self.dir / "zookeeper.log").open("ab")
        env = {**os.environ, "ZOO_LOG_DIR": str(self.dir)}
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-cp", f"{CONF_DIR}:{jars}",
             "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        wait_until(self.view.healthy, timeout=30, message="zookeeper to answer")
        return self

    @property
    def connect(self) -> str:
        return f"127.0.0.1:{self.port}"

    def daemon_args(self) -> list[str]:
        return ["--zookeeper", self.connect]

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        """kill -9 and start again on the same port and data: sessions survive it."""
        self.kill()
        self.start()

    def restart_empty(self) -> None:
        """kill -9 and start again on the same port with an EMPTY data directory (data lost,
        an old snapshot restored): it refuses every session that has seen a later zxid than
        its own. The tests' own view starts a new session too."""
        self.kill()
        self.view.close()
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.start()

    def bump_zxid(self, writes: int = 100) -> None:
        """Move the server's zxid on, so that clients which read after this have seen more
        than a server that starts empty has (the case of real data loss)."""
        scratch = "/zxid-bump"
        self.view.put(scratch, "0")
        for i in range(writes):
            self.view.client.set(scratch, str(i).encode())
        self.view.delete(scratch)

    def kill(self) -> None:
        """Stop the server by its pid (its data directory stays for a restart)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)

    def stop(self) -> None:
        self.view.close()
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ZkView:
    """The tests' reads and writes, in etcd terms: a key is a znode with data, or an
    ephemeral one; its "lease" is the session that owns it (0: persistent)."""

    def __init__(self, server: ZooKeeperServer) -> None:
        self.server = server
        self._client: KazooClient | None = None

    @property
    def client(self) -> KazooClient:
        if self._client is None:
            auth = self.server.auth
            client = KazooClient(hosts=self.server.connect, timeout=10,
                                 connection_retry={"max_tries": -1, "delay": 0.1,
                                                   "max_delay": 0.5},
                                 auth_data=[("digest", f"{auth[0]}:{auth[1]}")] if auth else None)
            client.start(timeout=10)
            self._client = client
        return self._client

    def healthy(self) -> bool:
        self.client.get_children("/")
        return True

    def _walk(self, base: str) -> list[tuple[str, bytes, Any]]:
        try:
            data, stat = self.client.get(base)
            children = self.client.get_children(base)
        except NoNodeError:
            return []
        out = [(base, data, stat)]
        for child in children:
            out += self._walk(f"{base.rstrip('/')}/{child}")
        return out

    def _nodes(self, prefix: str) -> list[tuple[str, bytes, Any]]:
        base = prefix.rstrip("/") if prefix.endswith("/") else (prefix.rsplit("/", 1)[0])
        return [(p, d, s) for p, d, s in self._walk(base or "/")
                if p.startswith(prefix) and (d or s.ephemeralOwner)]

    def items(self, prefix: str) -> dict[str, bytes]:
        return {p: d for p, d, _ in self._nodes(prefix)}

    def keys(self, prefix: str) -> set[str]:
        return set(self.items(prefix))

    def created(self, key: str) -> int:
        return int(self.client.exists(key).czxid)

    def lease_of(self, key: str) -> int:
        try:
            return int(self.client.exists(key).ephemeralOwner)
        except AttributeError:
            return 0

    def all_keys(self) -> set[str]:
        return {p for p, _, _ in self._nodes("/") if not p.startswith("/zookeeper")}

    def services(self, prefix: str) -> dict[str, dict[str, Any]]:
        return readable_entries(self.items(prefix + "/services/"))

    def put(self, key: str, value: str) -> None:
        if self.client.exists(key):
            self.client.set(key, value.encode())
        else:
            self.client.create(key, value.encode(), makepath=True)

    def delete(self, key: str) -> None:
        with contextlib.suppress(NoNodeError, NotEmptyError):
            self.client.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        with contextlib.suppress(NoNodeError):
            self.client.delete(prefix.rstrip("/"), recursive=True)

    def lease_ttl(self, lease: int) -> int:
        """1 while some znode is still owned by session `lease`, -1 otherwise (ZooKeeper
        shows a client no session's time left)."""
        return 1 if any(s.ephemeralOwner == lease for _, _, s in self._walk("/")) else -1

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.stop()
                self._client.close()
            self._client = None


def new_store_server(kind: str) -> Any:
    """A store server of its own for a test that stops or pauses it (not started)."""
    from harness import EtcdServer  # noqa: PLC0415

    if kind == "zookeeper":
        problem = zookeeper_available()
        if problem is not None:
            if os.environ.get("CI"):
                raise RuntimeError(problem)
            pytest.skip(problem)
        return ZooKeeperServer()
    server = EtcdServer(host_port=free_port())
    server.port = server._host_port  # noqa: SLF001 - fixed, so a restart keeps it
    return server
