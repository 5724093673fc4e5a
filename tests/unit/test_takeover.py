"""Whether the daemon that wrote a host record still runs (issue 11, case 5)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace

import pytest
from fakes import MemoryStore

from registrator.errors import TakenOverError
from registrator.stores.base import KeyValue
from registrator.takeover import Instance, lease_refreshed, previous_lease, writer_alive


class Engine:
    def __init__(self, running=()):
        self.running = set(running)

    def engine_id(self):
        return "E1"

    def inspect(self, cid):
        return {"State": {"Running": True}} if cid in self.running else None


ME = Instance.current("E1")


def test_this_process_is_alive_and_a_dead_pid_is_not():
    other = replace(ME, pid=os.getppid(), start="not-its-start-time")
    assert writer_alive(other, replace(ME, pid=1), Engine()) is False  # pid reused
    parent = Instance.current("E1")
    parent = replace(parent, pid=os.getppid())
    from registrator.takeover import _start_time  # noqa: PLC0415 - the one helper under test

    parent = replace(parent, start=_start_time(str(os.getppid())))
    assert writer_alive(parent, ME, Engine()) is True
    assert writer_alive(replace(ME), ME, Engine()) is False  # our own earlier record


def test_containers_are_asked_of_the_engine():
    me = replace(ME, container="a" * 64)
    assert writer_alive(replace(ME, container="a" * 64, pid=1), me, Engine()) is False
    assert writer_alive(replace(ME, container="b" * 64), me, Engine({"b" * 64})) is True
    assert writer_alive(replace(ME, container="b" * 64), me, Engine()) is False


def test_another_engine_cannot_tell():
    assert writer_alive(replace(ME, engine="E2"), ME, Engine()) is None


def test_an_unknown_engine_cannot_tell_even_when_both_are_unknown():
    # A socket proxy that refuses /info leaves the engine id empty on two different hosts:
    # "" == "" must not make one's container look like a dead one on the other's engine.
    other = replace(ME, engine="", container="b" * 64)
    assert writer_alive(other, replace(ME, engine=""), Engine()) is None


class TtlStore(MemoryStore):
    def __init__(self, ttls):
        super().__init__()
        self.ttls = list(ttls)

    def lease_ttl(self, lease):
        return (self.ttls.pop(0) if len(self.ttls) > 1 else self.ttls[0]), 6


def test_a_refreshed_lease_is_alive_and_a_stale_one_is_not():
    stop = threading.Event()
    assert lease_refreshed(TtlStore([5, 5, 4, 6]), 7, stop) is True
    assert lease_refreshed(TtlStore([1]), 7, stop) is False  # not refreshed in a long while
    assert lease_refreshed(TtlStore([-1]), 7, stop) is False  # gone


def test_previous_lease_refuses_a_live_daemon_unless_told_to_take_over():
    store = MemoryStore()
    other = replace(ME, container="b" * 64)
    value = json.dumps({"started_at": "T", "instance": other.as_record()}).encode()
    store.data["/p/hosts/h"] = KeyValue("/p/hosts/h", value, 42)
    args = {"stop": threading.Event(), "where": "--hostname h"}
    with pytest.raises(TakenOverError, match="another registrator runs for --hostname h"):
        previous_lease(store, "/p/hosts/h", ME, Engine({"b" * 64}), takeover=False, **args)
    assert previous_lease(store, "/p/hosts/h", ME, Engine({"b" * 64}), takeover=True,
                          **args) == 42
    assert previous_lease(store, "/p/hosts/h", ME, Engine(), takeover=False, **args) == 42
