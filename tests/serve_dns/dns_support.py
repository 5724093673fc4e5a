"""Helpers of serve's DNS tests: real `dig` (bind9-dnsutils) against our server, and a
state stand-in whose snapshot a test replaces (what serve/state.py does on a store change)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

DIG = shutil.which("dig")


def need_dig() -> str:
    if DIG is None:
        pytest.skip("dig is not installed (apt-get install bind9-dnsutils)")
    return DIG


@dataclass(frozen=True)
class Snap:
    revision: int
    services: Mapping[str, Sequence[Any]]
    hosts: Sequence[Any] = field(default_factory=tuple)


class FakeState:
    """current()/subscribe() as ServeState has them; set() publishes a new snapshot."""

    def __init__(self, snapshot: Snap) -> None:
        self.snapshot = snapshot
        self.callbacks: list[Callable[[Snap], None]] = []

    def current(self) -> Snap:
        return self.snapshot

    def subscribe(self, callback: Callable[[Snap], None]) -> None:
        self.callbacks.append(callback)

    def set(self, snapshot: Snap) -> None:
        self.snapshot = snapshot
        for callback in self.callbacks:
            callback(snapshot)


def entry(name: str, n: int, address: str = "127.0.0.1", port: int = 8000,
          protocol: str = "tcp", tags: Sequence[str] = ()) -> dict[str, Any]:
    return {"name": name, "id": f"h1:{name}-{n}:{port}", "address": address, "port": port,
            "protocol": protocol, "tags": list(tags), "meta": {}, "host": "h1"}


def dig(port: int, name: str, rdtype: str = "A", *options: str, host: str = "127.0.0.1",
        timeout: float = 20) -> str:
    """dig's full output (+tries=1 +time=2: a lost answer fails fast)."""
    done = subprocess.run([need_dig(), f"@{host}", "-p", str(port), "+tries=1", "+time=2",
                           *options, name, rdtype], capture_output=True, text=True,
                          timeout=timeout, check=False)
    return done.stdout + done.stderr


def short(port: int, name: str, rdtype: str = "A", *options: str,
          host: str = "127.0.0.1") -> list[str]:
    return sorted(dig(port, name, rdtype, "+short", *options, host=host).split("\n")[:-1])


def status(output: str) -> str:
    """NOERROR/NXDOMAIN/REFUSED... from dig's header line."""
    for line in output.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    return f"no answer: {output[-300:]}"


def flags(output: str) -> set[str]:
    """The header flags of dig's last answer (after a TCP retry: the TCP one)."""
    found: set[str] = set()
    for line in output.splitlines():
        if line.startswith(";; flags:"):
            found = set(line.split(";")[2].split(":")[1].split())
    return found


def free_dns_port() -> int:
    """A loopback port free for both UDP and TCP (serve binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")
