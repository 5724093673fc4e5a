"""Check labels -> CheckSpec, and the rise/fall state machine."""

from __future__ import annotations

import pytest

from registrator.checks import CheckSpec, check_spec
from registrator.health import RiseFall
from registrator.labels import parse_env, parse_labels

TCP80 = (80, "tcp")


def spec(labels, env=(), port=TCP80):
    warnings = []
    result = check_spec(parse_labels(labels, parse_env(env)), port,
                        lambda label, msg: warnings.append((label, msg)))
    return result, warnings


@pytest.mark.parametrize(("labels", "expected"), [
    ({}, None),
    ({"registrator.check.http": "/health"}, CheckSpec("http", "/health")),
    ({"registrator.check.tcp": "true"}, CheckSpec("tcp")),
    ({"registrator.check.tcp": "false"}, None),
    ({"registrator.80.check.http": "/p", "registrator.check.interval": "500ms",
      "registrator.check.timeout": "200ms", "registrator.check.rise": "1",
      "registrator.80.check.fall": "5"},
     CheckSpec("http", "/p", interval=0.5, timeout=0.2, rise=1, fall=5)),
    ({"registrator.check.http": "/s", "registrator.check.http.status": "204, 200"},
     CheckSpec("http", "/s", statuses=(200, 204))),
    # The per-port scope's kind wins over the container-wide one.
    ({"registrator.check.http": "/", "registrator.80.check.tcp": "true"}, CheckSpec("tcp")),
    ({"SERVICE_CHECK_HTTP": "/gl", "SERVICE_CHECK_INTERVAL": "1m",
      "SERVICE_CHECK_TIMEOUT": "5s"}, CheckSpec("http", "/gl", interval=60, timeout=5)),
    ({"SERVICE_80_CHECK_TCP": "true"}, CheckSpec("tcp")),
    # A timeout above the interval is cut to the interval.
    ({"registrator.check.tcp": "1", "registrator.check.interval": "1s",
      "registrator.check.timeout": "5s"}, CheckSpec("tcp", interval=1, timeout=1)),
], ids=["none", "http", "tcp", "tcp-false", "per-port-fields", "status", "port-kind-wins",
        "gliderlabs", "gliderlabs-port-tcp", "timeout-capped"])
def test_specs(labels, expected):
    assert spec(labels) == (expected, [])


def test_gliderlabs_env_check_and_label_precedence():
    assert spec({"SERVICE_CHECK_HTTP": "/label"}, ["SERVICE_CHECK_HTTP=/env"])[0] == CheckSpec(
        "http", "/label")


@pytest.mark.parametrize(("labels", "label"), [
    ({"registrator.check.http": "health"}, "registrator.check.http"),
    ({"registrator.check.http": "/a b"}, "registrator.check.http"),
    ({"registrator.check.tcp": "maybe"}, "registrator.check.tcp"),
    ({"registrator.check.tcp": "1", "registrator.check.interval": "often"},
     "registrator.check.interval"),
    ({"registrator.check.tcp": "1", "registrator.check.interval": "10ms"},
     "registrator.check.interval"),
    ({"registrator.check.tcp": "1", "registrator.check.timeout": "0"},
     "registrator.check.timeout"),
    ({"registrator.check.tcp": "1", "registrator.check.rise": "0"}, "registrator.check.rise"),
    ({"registrator.check.tcp": "1", "registrator.check.fall": "x"}, "registrator.check.fall"),
    ({"registrator.check.http": "/", "registrator.check.http.status": "2xx"},
     "registrator.check.http.status"),
    ({"SERVICE_CHECK_INTERVAL": "soon", "SERVICE_CHECK_TCP": "true"},
     "SERVICE_CHECK_INTERVAL"),
])
def test_bad_check_labels_warn_and_mean_no_check(labels, label):
    result, warnings = spec(labels)
    assert result is None
    assert [w[0] for w in warnings] == [label]
    assert warnings[0][1].endswith("the service has no label check")


def test_check_on_udp_port_is_refused_with_a_warning():
    result, warnings = spec({"registrator.check.tcp": "true"}, port=(53, "udp"))
    assert result is None
    assert "udp" in warnings[0][1]


@pytest.mark.parametrize(("statuses", "code", "ok"), [
    ((), 200, True), ((), 302, True), ((), 404, False), ((), 500, False), ((), 199, False),
    ((204,), 204, True), ((204,), 200, False),
])
def test_status_rules(statuses, code, ok):
    assert CheckSpec("http", statuses=statuses).passes(code) is ok


def test_rise_and_fall_need_consecutive_results():
    state = RiseFall(up=False)
    results = [True, False, True, True, False, False, True, False, False, False]
    flips = [state.record(ok, rise=2, fall=3) for ok in results]
    # up after the 2nd pass in a row (index 3); a single failure (4,5 then a pass) does not
    # take it down; three failures in a row (7, 8, 9) do.
    assert flips == [False, False, False, True, False, False, False, False, False, True]
    assert state.up is False
