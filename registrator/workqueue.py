"""A coalescing queue of hints for the single worker thread. Events are hints, not commands:
a burst of events for one container is one look at it, and a pending full reconcile swallows
every per-container hint queued before it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Work:
    full: bool = False
    containers: list[str] = field(default_factory=list)
    lost_leases: set[int] = field(default_factory=set)
    # Wall-clock time (s) of the earliest event behind each container hint, for latency.
    event_times: dict[str, float] = field(default_factory=dict)


class WorkQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._containers: dict[str, float | None] = {}  # ordered; earliest event time
        self._full = False
        self._lost: set[int] = set()
        self._closed = False

    def container(self, container_id: str, event_time: float | None = None) -> None:
        with self._cond:
            if self._containers.get(container_id) is None:
                self._containers[container_id] = event_time
            self._cond.notify()

    def full(self) -> None:
        with self._cond:
            self._full = True
            self._cond.notify()

    def lease_lost(self, lease: int) -> None:
        with self._cond:
            self._lost.add(lease)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, timeout: float | None) -> Work | None:
        """Everything pending, at once; None on timeout or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not (self._closed or self._full or self._containers or self._lost):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            times = {c: t for c, t in self._containers.items() if t is not None}
            work = Work(self._full, [] if self._full else list(self._containers), self._lost,
                        times)
            self._containers, self._full, self._lost = {}, False, set()
            return work
