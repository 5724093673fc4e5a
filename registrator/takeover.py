"""Who runs for this host name. Two daemons with one --hostname and --prefix would revoke each
other's lease and delete each other's entries at every resync, so a daemon that finds the host
record held by another live daemon refuses to start (unless --takeover), and one that finds
its record taken over stops.

A restart after a crash must still take over at once (the entries of the crashed run stay
visible until the new run has rewritten them). The host record says which process wrote it:
the Docker engine, the daemon's container (when it runs in one) and its pid. On the same
engine that answers whether the writer still runs; elsewhere, the writer's lease does: a live
daemon refreshes it every ttl/3, so a lease that is not refreshed within that time is dead."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from registrator.errors import TakenOverError
from registrator.stores.base import Store

log = structlog.get_logger("registrator.takeover")
_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")
_SLACK = 2.0  # seconds of keepalive lateness (ticks, network) before a lease counts as dead


class Engine(Protocol):
    def engine_id(self) -> str: ...
    def inspect(self, container_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Instance:
    """The process that writes a host record."""

    engine: str
    container: str | None
    pid: int
    pidns: str
    start: str  # the process start time, in clock ticks since boot (tells pid reuse apart)

    @classmethod
    def current(cls, engine: str) -> Instance:
        return cls(engine, _own_container(), os.getpid(), _pidns("self"), _start_time("self"))

    @classmethod
    def from_record(cls, record: object) -> Instance | None:
        data = record.get("instance") if isinstance(record, dict) else None
        try:
            return cls(**data) if isinstance(data, dict) else None
        except TypeError:  # a record written by another version, or junk
            return None

    def as_record(self) -> dict[str, object]:
        return asdict(self)


def _own_container() -> str | None:
    """The id of the container this process runs in, from the bind mounts Docker and
    Podman make for /etc/hostname and friends; None outside a container."""
    with contextlib.suppress(OSError):
        found = _CONTAINER_ID.search(Path("/proc/self/mountinfo").read_text())
        return found.group(1) if found else None
    return None


def _pidns(pid: str) -> str:
    try:
        return str(Path(f"/proc/{pid}/ns/pid").readlink())
    except OSError:
        return ""


def _start_time(pid: str) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22; the command name (field 2) may hold spaces, so count from its closing ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def writer_alive(other: Instance, me: Instance, docker: Engine) -> bool | None:
    """Whether the process that wrote `other` still runs; None when this host cannot tell."""
    if not me.engine or other.engine != me.engine:
        return None  # "": a socket proxy refused /info, the engine is unknown
    if other.container is not None:
        if other.container == me.container:
            return False  # an earlier run in this very container
        info = docker.inspect(other.container)
        return bool(info and (info.get("State") or {}).get("Running"))
    if me.container is None and other.pidns == me.pidns:
        if other.pid == me.pid and other.start == me.start:
            return False
        return bool(other.start) and _start_time(str(other.pid)) == other.start
    return None


def lease_refreshed(store: Store, lease: int, stop: threading.Event) -> bool:
    """Watch another daemon's lease for up to one keepalive interval: True once it is
    refreshed (its daemon runs), False when it is not (the lease is left to run out)."""
    left, granted = store.lease_ttl(lease)
    interval = granted / 3
    deadline = time.monotonic() + interval + _SLACK
    if left >= 0 and left >= granted - interval - _SLACK:
        log.info("the host record's lease may be another daemon's; watching it for one "
                 "keepalive interval", lease=f"{lease:x}", seconds=round(interval + _SLACK, 1))
    while left >= 0 and left >= granted - interval - _SLACK and time.monotonic() < deadline:
        if stop.wait(0.25):
            return False
        before = left
        left, _ = store.lease_ttl(lease)
        if left > before:
            return True
    return False


def previous_lease(  # noqa: PLR0913 - keyword-only, each needed
        store: Store, host_key: str, me: Instance, docker: Engine, *,
                   takeover: bool, stop: threading.Event, where: str) -> int | None:
    """The lease of an earlier run to take over once our entries are written, or None.
    Raises TakenOverError when another daemon runs for this host name and prefix."""
    kv = store.get(host_key)
    if kv is None or not kv.lease:
        return None
    record = _json(kv.value)
    other = Instance.from_record(record)
    if takeover:
        log.warning("--takeover: taking this host name over from whoever holds it",
                    lease=f"{kv.lease:x}")
        return kv.lease
    alive = writer_alive(other, me, docker) if other is not None else None
    if alive is None:
        alive = lease_refreshed(store, kv.lease, stop)
    if alive:
        started = record.get("started_at", "?") if isinstance(record, dict) else "?"
        raise TakenOverError(
            f"another registrator runs for {where} (lease {kv.lease:x}, started {started}); "
            "stop it, give this one another --hostname or --prefix, or pass --takeover")
    return kv.lease


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None

