"""Drain on stop (SPEC §5): which kills drain, for how long, and that every path (events,
resync) holds a draining container back."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from fakes import FakeDocker, MemoryStore

from registrator.desired import Policy
from registrator.docker_source import Hint, container_hint
from registrator.drain import (
    DEFAULT_STOP_TIMEOUT,
    Drains,
    parse_signal,
    started_at,
    stop_signals,
    stop_timeout,
)
from registrator.keys import KeySpace
from registrator.layouts import Renderer
from registrator.reconcile import Reconciler

STARTED = "2026-01-01T10:00:00.123456789Z"
T0 = 1_767_261_600.2  # a moment after STARTED, epoch seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def info(running: bool = True, stop_signal: str | None = None, timeout: int | None = None,
         started: str = STARTED) -> dict[str, Any]:
    config: dict[str, Any] = {"Image": "web:1", "Labels": {}}
    if stop_signal is not None:
        config["StopSignal"] = stop_signal
    if timeout is not None:
        config["StopTimeout"] = timeout
    return {"Name": "/web", "State": {"Running": running, "StartedAt": started},
            "Config": config}


@pytest.mark.parametrize(("text", "expected"), [
    ("15", 15), ("SIGTERM", 15), ("term", 15), ("SIGQUIT", 3), ("KILL", 9), (9, 9),
    ("SIGRTMIN+3", int(signal.SIGRTMIN) + 3), ("", None), ("SIGNOPE", None), ("0", None),
    ("999", None), (None, None), (True, None), ("1five", None),
])
def test_parse_signal(text, expected):
    assert parse_signal(text) == expected


def test_stop_signals_add_the_containers_own():
    assert stop_signals(info()) == {2, 3, 9, 15}
    assert stop_signals(info(stop_signal="SIGUSR1")) == {2, 3, 9, 15, int(signal.SIGUSR1)}
    assert stop_signals(info(stop_signal="bogus")) == {2, 3, 9, 15}


@pytest.mark.parametrize(("data", "expected"), [
    (info(), DEFAULT_STOP_TIMEOUT), (info(timeout=3), 3.0), (info(timeout=0), 0.0),
    ({"Config": {"StopTimeout": -1}}, DEFAULT_STOP_TIMEOUT),
    ({"Config": {"StopTimeout": "5"}}, DEFAULT_STOP_TIMEOUT),
    ({"Config": {}, "HostConfig": {"StopTimeout": 7}}, 7.0),
])
def test_stop_timeout(data, expected):
    assert stop_timeout(data) == expected


def test_started_at_reads_docker_and_podman_forms():
    assert started_at(info()) == pytest.approx(1_767_261_600.123456)
    assert started_at(info(started="2026-01-01T10:00:00.5+00:00")) == pytest.approx(
        1_767_261_600.5)
    assert started_at(info(started="0001-01-01T00:00:00Z")) is None
    assert started_at(info(started="yesterday")) is None


def drains(clock: Clock) -> tuple[Drains, list[str]]:
    woken: list[str] = []
    return Drains(wake=woken.append, margin=5.0, clock=clock), woken


@pytest.mark.parametrize(("sig", "own", "drains_it"), [
    ("15", None, True), ("2", None, True), ("3", None, True), ("9", None, True),
    ("1", None, False), ("10", None, False), ("10", "SIGUSR1", True), ("28", "SIGWINCH", True),
])
def test_which_kills_drain(sig, own, drains_it):
    clock = Clock()
    d, _ = drains(clock)
    d.killed("c1", sig, T0)
    assert d.holds("c1", info(stop_signal=own)) is drains_it
    d.close()


def test_grace_period_is_stop_timeout_plus_margin_then_registered_again():
    clock = Clock()
    d, _ = drains(clock)
    d.killed("c1", "15", T0)
    assert d.holds("c1", info(timeout=5))
    clock.now += 9.9
    assert d.holds("c1", info(timeout=5))  # a resync inside the grace period
    clock.now += 0.2
    assert not d.holds("c1", info(timeout=5))  # survived: back
    assert not d.holds("c1", info(timeout=5))  # and forgotten
    d.close()


def test_a_timer_wakes_the_worker_at_the_end():
    d = Drains(wake=(woken := []).append, margin=0.2)
    d.killed("c1", "15", T0)
    assert d.holds("c1", info(timeout=0))
    import time  # noqa: PLC0415 - only this test waits on the real clock
    deadline = time.monotonic() + 2
    while not woken and time.monotonic() < deadline:
        time.sleep(0.01)
    assert woken == ["c1"]
    d.close()


@pytest.mark.parametrize("later", [
    None,  # gone
    info(running=False),  # stopped
    info(started="2026-01-01T10:00:05Z"),  # restarted between two looks
])
def test_drain_ends_when_the_container_goes_or_starts_afresh(later):
    clock = Clock()
    d, _ = drains(clock)
    d.killed("c1", "15", T0)
    assert d.holds("c1", info())
    assert not d.holds("c1", later)
    assert not d.draining("c1")
    d.close()


def test_opt_out_and_a_kill_from_before_the_current_start():
    clock = Clock()
    d, _ = drains(clock)
    d.killed("c1", "15", T0)
    assert not d.holds("c1", info(), enabled=False)
    d.killed("c2", "15", T0)  # then the container restarted before the worker looked
    assert not d.holds("c2", info(started="2026-01-01T10:00:09Z"))
    d.killed("c3", "1", T0)
    d.killed("c3", "15", T0 + 1)  # HUP then TERM: the TERM drains
    assert d.holds("c3", info())
    d.retain({"c3"})
    assert d.draining("c3")
    d.retain(set())
    assert not d.draining("c3")
    d.close()


def test_kill_hint_carries_the_signal():
    event = {"Type": "container", "Action": "kill", "timeNano": 2_000_000_000,
             "Actor": {"ID": "abc", "Attributes": {"signal": "15", "name": "web"}}}
    assert container_hint(event) == Hint("abc", "kill", 2.0, "15")
    event = {**event, "Action": "die"}
    assert container_hint(event) == Hint("abc", "die", 2.0, None)


def test_resync_during_the_grace_period_does_not_register_again():
    store, docker, clock = MemoryStore(), FakeDocker(), Clock()
    d, _ = drains(clock)
    rec = Reconciler(store, docker, Policy(hostname="h1", host_ip="10.0.0.1"),
                     Renderer(KeySpace("/reg")), host_record=json.dumps,
                     drains=d)
    rec.lease = store.grant_lease(30)
    docker.add("c1", "one", 8001)
    docker.add("c2", "two", 8002, labels={"registrator.drain": "false"})
    for cid in ("c1", "c2"):
        docker.containers[cid]["State"]["StartedAt"] = STARTED
    rec.full()
    assert len(rec._owner) == 2  # noqa: SLF001
    for cid in ("c1", "c2"):
        d.killed(cid, "15", T0)
    rec.sync(["c1", "c2"])
    names = {s.container_name for s in rec._by_container.get("c1", {}).values()}  # noqa: SLF001
    assert names == set()
    assert set(rec._by_container) == {"c2"}  # noqa: SLF001 - opted out: kept
    rec.full()  # the resync
    assert set(rec._by_container) == {"c2"}  # noqa: SLF001
    clock.now += DEFAULT_STOP_TIMEOUT + 5.1
    rec.full()
    assert set(rec._by_container) == {"c1", "c2"}  # noqa: SLF001
    d.close()
