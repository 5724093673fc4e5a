# ruff: noqa: SLF001 - the guard and the failure bookkeeping are what is under test
"""A thread that dies is a failed /healthz and a non-zero exit, and store writes failing for
longer than a short bound are one too (issue 11, cases 3 and 7); a clock step is not
latency."""

from __future__ import annotations

import threading
import time

from fakes import FakeDocker, MemoryStore
from structlog.testing import capture_logs

from registrator import daemon as daemon_module
from registrator.daemon import WRITE_FAILURE_BOUND, Daemon, _monotonic_at
from registrator.errors import StoreUnavailableError
from registrator.settings import build_config


def make_daemon():
    config = build_config(etcd_endpoints="http://127.0.0.1:2379", ip="127.0.0.1", hostname="h")
    docker = FakeDocker()
    docker.base_url = "fake"
    return Daemon(config, docker, MemoryStore(), threading.Event())


def test_a_dying_thread_fails_healthz_and_asks_for_a_restart():
    d = make_daemon()
    d.events_connected = d.lease_alive = True
    d.store_problem = None
    assert d.health_problem() is None

    def boom():
        raise RuntimeError("bug")

    with capture_logs() as logs:
        thread = threading.Thread(target=d._guarded, args=(boom, None), name="worker_loop")
        thread.start()
        thread.join(5)
    assert d.stop.is_set()
    assert d.exit_code == 1
    assert "worker_loop thread died" in d.health_problem()
    assert logs[0]["event"] == "thread died; exiting for a restart"


def test_writes_failing_past_the_bound_fail_healthz(monkeypatch):
    d = make_daemon()
    d.events_connected = d.lease_alive = True
    d.store_problem = None
    now = [1000.0]
    monkeypatch.setattr(daemon_module.time, "monotonic", lambda: now[0])
    d._write_failed(StoreUnavailableError("etcd is out of space"))
    assert d.health_problem() is None  # a short hiccup is ridden out
    now[0] += WRITE_FAILURE_BOUND + 1
    d._write_failed(StoreUnavailableError("etcd is out of space"))
    problem = d.health_problem()
    assert problem.startswith("store writes failing for 6s (2 attempts)")
    assert "out of space" in problem


def test_a_clock_step_is_not_recorded_as_latency():
    assert time.monotonic() - _monotonic_at(time.time() - 7200) <= 5.1  # clamped
    assert _monotonic_at(time.time() + 3600) <= time.monotonic()  # event "from the future"
    assert _monotonic_at(None) is None
