"""Drain on stop (SPEC §5): when Docker begins stopping a container (a `kill` event with its
stop signal, SIGTERM, SIGINT, SIGQUIT or SIGKILL), its entries go at once, while the process
still finishes its in-flight requests, so load balancers stop sending new ones during the
grace period. A container still running after its stop timeout plus a margin survived the
signal: it is registered again.

All drain state lives here: which containers were sent a signal, and which are draining until
when. The events thread records kills; the worker (the only writer) asks `gate` with fresh
inspect data, on every path (event, resync, lease recovery), so a resync during the grace
period cannot re-register a draining container early. A timer wakes the worker at the end.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

log = structlog.get_logger("registrator.drain")

DEFAULT_STOP_TIMEOUT = 10.0  # Docker's own default for `docker stop`
# Beyond the stop timeout: the engine's SIGKILL and the die event need a moment to arrive, and
# re-registering a container in the instant before it dies would flap its entry.
MARGIN = 5.0
# Signals that mean "stop" whatever the container's own StopSignal: compose and operators send
# these; anything else (HUP, USR1: reloads) leaves the entries alone.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL})
_MAX_KILLS = 8  # kills remembered per container before the worker looks: a burst is bounded


def parse_signal(text: object) -> int | None:
    """'15', 'TERM', 'SIGTERM', 'SIGRTMIN+3' -> the number; None when it is no signal."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text if text > 0 else None
    if not isinstance(text, str):
        return None
    name = text.strip().upper()
    if name.isascii() and name.isdigit():
        return int(name) if 0 < int(name) < 256 else None
    name = name if name.startswith("SIG") else f"SIG{name}"
    for base, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        if name.startswith(base) and name[len(base):].isdigit():
            root = signal.SIGRTMIN if sign > 0 else signal.SIGRTMAX
            return int(root) + sign * int(name[len(base):])
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def stop_signals(info: dict[str, Any]) -> frozenset[int]:
    """The signals that begin a stop of this container."""
    own = parse_signal((info.get("Config") or {}).get("StopSignal"))
    return STOP_SIGNALS | ({own} if own is not None else set())


def stop_timeout(info: dict[str, Any]) -> float:
    """Config.StopTimeout (`docker run --stop-timeout`), else Docker's default of 10 s.
    Podman reports it in Config too; HostConfig is read for engines that put it there."""
    for section in ("Config", "HostConfig"):
        value = (info.get(section) or {}).get("StopTimeout")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return DEFAULT_STOP_TIMEOUT


def started_at(info: dict[str, Any]) -> float | None:
    """State.StartedAt as epoch seconds (Docker writes nanoseconds; fromisoformat keeps µs)."""
    text = (info.get("State") or {}).get("StartedAt")
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    head, dot, tail = text.partition(".")
    if dot:  # trim the fraction to 6 digits, keep the zone
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[:min(digits, 6)] + tail[digits:]
    try:
        return datetime.fromisoformat(head + dot + tail).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _State:
    # (signal, event wall time or None, monotonic time it was seen), oldest first
    kills: list[tuple[int, float | None, float]] = field(default_factory=list)
    until: float | None = None  # monotonic end of the grace period, once draining
    started: float | None = None  # StartedAt of the container being drained
    timer: threading.Timer | None = None


class Drains:
    def __init__(self, wake: Callable[[str], None], margin: float = MARGIN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._wake = wake
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}
        self._closed = False

    def killed(self, cid: str, sig: object, at: float | None) -> None:
        """A `kill` event (events thread): `sig` as the event carries it, `at` its time."""
        number = parse_signal(sig)
        if number is None:
            return
        with self._lock:
            state = self._states.setdefault(cid, _State())
            if len(state.kills) < _MAX_KILLS:
                state.kills.append((number, at, self._clock()))

    def draining(self, cid: str) -> bool:
        with self._lock:
            state = self._states.get(cid)
            return state is not None and state.until is not None

    def holds(self, cid: str, info: dict[str, Any] | None, enabled: bool = True) -> bool:
        """True while the container drains: its entries stay out of the store."""
        with self._lock:
            state = self._states.get(cid)
            if state is None:
                return False
            if (info is None or not enabled or not (info.get("State") or {}).get("Running")
                    or (state.until is not None and started_at(info) != state.started)):
                # Gone, stopped, opted out, or started afresh since (a restart whose die and
                # start came between two looks): nothing to hold back.
                self._forget(cid)
                return False
            if state.until is None and not self._begin(cid, state, info):
                self._forget(cid)
                return False
            assert state.until is not None  # noqa: S101 - set by _begin
            remaining = state.until - self._clock()
            if remaining <= 0:
                log.info("still running after its stop timeout; registered again",
                         container=_name(info))
                self._forget(cid)
                return False
            if state.timer is None and not self._closed:
                state.timer = threading.Timer(remaining + 0.05, self._wake, args=(cid,))
                state.timer.daemon = True
                state.timer.start()
            return True

    def _begin(self, cid: str, state: _State, info: dict[str, Any]) -> bool:
        """Start draining on the first stop signal sent to this run of the container."""
        signals, started = stop_signals(info), started_at(info)
        for number, at, seen in state.kills:
            # A kill from before the container's current start was for an earlier run.
            if number in signals and (at is None or started is None or at >= started):
                timeout = stop_timeout(info)
                state.until, state.started = seen + timeout + self._margin, started
                state.kills.clear()
                log.info("stopping: entries removed while it drains", container=_name(info),
                         signal=number, seconds=timeout + self._margin, cid=cid[:12])
                return True
        return False

    def retain(self, running: set[str]) -> None:
        """Forget containers that no longer run (a full reconcile saw the whole list)."""
        with self._lock:
            for cid in [c for c in self._states if c not in running]:
                self._forget(cid)

    def _forget(self, cid: str) -> None:
        state = self._states.pop(cid, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for cid in list(self._states):
                self._forget(cid)


def _name(info: dict[str, Any]) -> str:
    name = info.get("Name")
    return name.lstrip("/") if isinstance(name, str) else "?"
