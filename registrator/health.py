"""Label health checks at run time (SPEC §6, nerve's role).

One scheduler thread keeps a heap of due checks and hands them to a bounded thread pool, so a
slow service only ever occupies one worker and never delays another's check or the event
stream. Each result feeds a rise/fall state machine; when a service flips, the container is
queued as a hint and the reconciler (the only writer) re-reads it and applies the gate.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from registrator.checks import CheckSpec
from registrator.model import Service

log = structlog.get_logger("registrator.health")
MAX_WORKERS = 64


@dataclass(slots=True)
class RiseFall:
    """Up after `rise` passes in a row, down after `fall` failures in a row."""

    up: bool
    streak: int = 0  # consecutive results that disagree with `up`

    def record(self, ok: bool, rise: int, fall: int) -> bool:
        """Feed one result; True when the state flipped."""
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (rise if ok else fall):
            self.up, self.streak = ok, 0
            return True
        return False


# How long a TCP check watches a new connection for being closed straight away.
_CLOSED_AT_ONCE = 0.05


def _tcp_open(address: str, port: int, timeout: float) -> bool:
    """A connection opens and is not closed at once. Docker's userland proxy accepts
    connections on a published port even when nothing listens in the container, then
    closes them: a bare connect would always pass."""
    with socket.create_connection((address, port), timeout) as sock:
        sock.settimeout(min(_CLOSED_AT_ONCE, timeout))
        try:
            return sock.recv(1, socket.MSG_PEEK) != b""  # a banner is fine, EOF is not
        except TimeoutError:
            return True  # quiet and open: a server waiting for its client to speak


def probe(service: Service, spec: CheckSpec) -> bool:
    """One check against the registered address, and nothing else."""
    try:
        if spec.kind == "tcp":
            return _tcp_open(service.address, service.port, spec.timeout)
        # A fresh connection each time (a check should prove new clients get in), closed
        # after the status line: the stdlib client costs a fraction of a heavier one.
        conn = http.client.HTTPConnection(service.address, service.port, timeout=spec.timeout)
        try:
            conn.request("GET", spec.path, headers={"User-Agent": "registrator-health",
                                                    "Connection": "close"})
            return spec.passes(conn.getresponse().status)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


@dataclass(slots=True)
class _Check:
    container_id: str
    service: Service
    spec: CheckSpec
    state: RiseFall
    generation: int
    running: bool = False


@dataclass(order=True, slots=True)
class _Due:
    at: float
    seq: int
    key: str = field(compare=False)
    generation: int = field(compare=False)


class HealthMonitor:
    def __init__(self, on_change: Callable[[str], None],
                 runner: Callable[[Service, CheckSpec], bool] = probe,
                 max_workers: int = MAX_WORKERS) -> None:
        self._on_change = on_change
        self._runner = runner
        self._checks: dict[str, _Check] = {}
        self._heap: list[_Due] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="check")
        self._thread = threading.Thread(target=self._schedule, name="health", daemon=True)
        self.checks_run = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def active(self) -> int:
        return len(self._checks)

    def gate(self, container_id: str, entries: dict[str, Service],
             assume_up: Callable[[str], bool]) -> dict[str, Service]:
        """Track the checks of one container's services; return the ones that may be in the
        store: those without a label check, and those whose check is up. A new check starts
        down (registered after `rise` passes) unless its entry is already registered, so a
        daemon restart or a label edit does not make a healthy service flap."""
        with self._cond:
            for key in [k for k, c in self._checks.items()
                        if c.container_id == container_id and k not in entries]:
                del self._checks[key]
            passing = {}
            for key, service in entries.items():
                spec = service.check
                if spec is None:
                    self._checks.pop(key, None)
                    passing[key] = service
                    continue
                current = self._checks.get(key)
                if current is None or current.spec != spec or current.service != service:
                    up = current.state.up if current is not None else assume_up(key)
                    generation = next(self._seq)
                    self._checks[key] = _Check(container_id, service, spec, RiseFall(up),
                                               generation)
                    # Spread first runs so checks of containers started together do not
                    # all fire at the same instant every interval afterwards.
                    self._push(random.uniform(0, min(spec.interval, 1.0)), key, generation)  # noqa: S311
                    current = self._checks[key]
                if current.state.up:
                    passing[key] = service
            return passing

    def retain(self, container_ids: set[str]) -> None:
        """Drop the checks of containers that no longer run."""
        with self._cond:
            for key in [k for k, c in self._checks.items() if c.container_id not in container_ids]:
                del self._checks[key]

    def _push(self, delay: float, key: str, generation: int) -> None:
        heapq.heappush(self._heap, _Due(time.monotonic() + delay, next(self._seq), key,
                                        generation))
        self._cond.notify()

    def _schedule(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                if not self._heap or self._heap[0].at > now:
                    self._cond.wait(self._heap[0].at - now if self._heap else None)
                    continue
                due = heapq.heappop(self._heap)
                check = self._checks.get(due.key)
                if check is None or check.generation != due.generation or check.running:
                    continue  # replaced or removed since it was scheduled
                check.running = True
                self._pool.submit(self._run, due.key, check)

    def _run(self, key: str, check: _Check) -> None:
        ok = self._runner(check.service, check.spec)
        with self._cond:
            self.checks_run += 1
            check.running = False
            if self._checks.get(key) is not check or self._stopped:
                return
            flipped = check.state.record(ok, check.spec.rise, check.spec.fall)
            self._push(check.spec.interval, key, check.generation)
        if flipped:
            event = ("health check passing; registering" if ok
                     else "health check failing; deregistering")
            log.info(event, service=check.service.name, id=check.service.id,
                     check=check.spec.kind)
            self._on_change(check.container_id)
