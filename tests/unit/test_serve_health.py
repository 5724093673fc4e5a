"""serve's /healthz text says why the copy is stale (a refused ZooKeeper session, an etcd
that does not answer), not only for how long."""

from __future__ import annotations

from types import SimpleNamespace

from registrator.serve.http import Api, Options


def state(stale_for, problem):
    snap = SimpleNamespace(loaded=True, revision=7)
    return SimpleNamespace(current=lambda: snap, stale_for=stale_for, problem=problem,
                           subscribe=lambda _cb: None)


def test_healthz_names_the_reason_the_copy_is_stale():
    why = "store unreachable: zookeeper: the servers refused our session"
    api = Api(state(30.0, why), Options(prefix="/p", stale_after=10.0), SimpleNamespace())
    problem = api.health()
    assert problem is not None
    assert "unreachable for 30.0s" in problem
    assert why in problem


def test_healthz_is_ok_while_current():
    api = Api(state(None, None), Options(prefix="/p"), SimpleNamespace())
    assert api.health() is None
