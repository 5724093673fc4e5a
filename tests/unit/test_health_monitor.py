"""HealthMonitor scheduling and gating with a fake probe (the real probe is exercised
against real containers in tests/integration/test_health.py)."""

from __future__ import annotations

import threading

from registrator.checks import CheckSpec
from registrator.health import HealthMonitor
from registrator.model import Service


def svc(name, check, port=80):
    return Service(name=name, id=f"h:{name}:{port}", address="127.0.0.1", port=port,
                   protocol="tcp", host="h", container_id="c-" + name, container_name="/x",
                   image="i", check=check)


class Probe:
    """Answers per service name; records calls; can block one service."""

    def __init__(self):
        self.answers = {}
        self.calls = {}
        self.block = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, service, spec):
        with self.lock:
            self.calls[service.name] = self.calls.get(service.name, 0) + 1
        if service.name == "slow":
            self.block.wait(10)
        return self.answers.get(service.name, True)


def wait_for(predicate, timeout=5.0):
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if predicate():
                return True
            done.wait(0.01)
        return predicate()
    finally:
        deadline.cancel()


def test_new_check_is_gated_until_rise_passes_then_change_is_reported():
    changed, probe = [], Probe()
    monitor = HealthMonitor(on_change=changed.append, runner=probe)
    monitor.start()
    try:
        fast = CheckSpec("tcp", interval=0.1, timeout=0.1, rise=2, fall=1)
        entries = {"k": svc("web", fast), "plain": svc("plain", None)}
        assert set(monitor.gate("c-web", entries, lambda _k: False)) == {"plain"}
        assert wait_for(lambda: changed == ["c-web"])
        assert set(monitor.gate("c-web", entries, lambda _k: False)) == {"k", "plain"}
        probe.answers["web"] = False
        assert wait_for(lambda: changed == ["c-web", "c-web"])
        assert set(monitor.gate("c-web", entries, lambda _k: False)) == {"plain"}
    finally:
        monitor.stop()


def test_already_registered_entry_starts_up():
    monitor = HealthMonitor(on_change=lambda _c: None, runner=Probe())
    entries = {"k": svc("web", CheckSpec("tcp"))}
    assert set(monitor.gate("c-web", entries, lambda k: k == "k")) == {"k"}


def test_one_slow_check_does_not_delay_the_others():
    probe = Probe()
    monitor = HealthMonitor(on_change=lambda _c: None, runner=probe, max_workers=4)
    monitor.start()
    try:
        fast = CheckSpec("tcp", interval=0.05, timeout=0.05)
        monitor.gate("c-slow", {"s": svc("slow", fast)}, lambda _k: False)
        monitor.gate("c-quick", {"q": svc("quick", fast)}, lambda _k: False)
        assert wait_for(lambda: probe.calls.get("quick", 0) >= 5)
        assert probe.calls.get("slow") == 1  # still stuck in its first check
    finally:
        probe.block.set()
        monitor.stop()


def test_checks_of_gone_containers_are_dropped():
    monitor = HealthMonitor(on_change=lambda _c: None, runner=Probe())
    monitor.gate("a", {"ka": svc("a", CheckSpec("tcp"))}, lambda _k: False)
    monitor.gate("b", {"kb": svc("b", CheckSpec("tcp"))}, lambda _k: False)
    assert monitor.active == 2
    monitor.retain({"b"})
    assert monitor.active == 1
    monitor.gate("b", {}, lambda _k: False)
    assert monitor.active == 0
