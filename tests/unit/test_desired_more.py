"""Issue 13's registration rules, from inspect data: the drain opt-out label, the network and
address labels, IPv6 and Swarm names (SPEC §2-3). Helpers come from test_desired."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from test_desired import HOST_IP, INTERNAL, TWO_NETS, binding, dual, make_container, only, run

from registrator.desired import Policy


# -- drain on stop (SPEC §5): the opt-out label ---------------------------------------------
@pytest.mark.parametrize(("labels", "env", "drain"), [
    ({}, {}, True),
    ({"registrator.drain": "false"}, {}, False),
    ({}, {"SERVICE_DRAIN": "false"}, False),
    ({"SERVICE_DRAIN": "no"}, {}, False),
    ({"registrator.drain": "true"}, {"SERVICE_DRAIN": "false"}, True),  # namespaced wins
])
def test_drain_label(labels, env, drain):
    result = run(make_container(labels=labels, env=env, ports={"80/tcp": dual(8080)}))
    assert (result.drain, result.warnings, len(result.services)) == (drain, [], 1)
    assert result.services[0].meta == ()  # SERVICE_DRAIN is not meta


@pytest.mark.parametrize(("labels", "env", "label"), [
    ({"registrator.drain": "maybe"}, {}, "registrator.drain"),
    ({}, {"SERVICE_DRAIN": "later"}, "SERVICE_DRAIN"),
])
def test_bad_drain_label_warns_once_and_skips(labels, env, label):
    result = run(make_container(labels=labels, env=env,
                                ports={"80/tcp": dual(8080), "81/tcp": dual(8081)}))
    assert result.services == []
    assert [w.label for w in result.warnings] == [label]


# -- per-container network and address, IPv6 (issue 13) -------------------------------------
DUAL_NET = {"v6net": {"IPAddress": "172.30.0.2", "GlobalIPv6Address": "fd00:13::2"}}
V6_ONLY = {"v6net": {"IPAddress": "", "GlobalIPv6Address": "fd00:13::2"}}


@pytest.mark.parametrize(("labels", "policy", "networks", "address"), [
    ({"registrator.network": "back"}, INTERNAL, TWO_NETS, "10.0.2.2"),
    # the label beats --network
    ({"registrator.network": "back"}, replace(INTERNAL, network="front"), TWO_NETS, "10.0.2.2"),
    ({}, replace(INTERNAL, network="front"), TWO_NETS, "10.0.1.2"),
    ({}, INTERNAL, V6_ONLY, "fd00:13::2"),
    ({}, INTERNAL, DUAL_NET, "172.30.0.2"),
    ({}, replace(INTERNAL, ipv6=True), DUAL_NET, "fd00:13::2"),
    ({}, replace(INTERNAL, ipv6=True), TWO_NETS, None),  # two networks: one warning
    ({"registrator.network": "front"}, replace(INTERNAL, ipv6=True), TWO_NETS, "10.0.1.2"),
    ({"registrator.address": "192.0.2.99"}, INTERNAL, TWO_NETS, None),  # still two networks
    ({"registrator.address": "192.0.2.99", "registrator.network": "front"}, INTERNAL,
     TWO_NETS, "192.0.2.99"),
])
def test_internal_address_choice(labels, policy, networks, address):
    result = run(make_container(ports={"80/tcp": None}, labels=labels,
                                networks=copy.deepcopy(networks)), policy)
    assert [s.address for s in result.services] == ([address] if address else [])
    assert len(result.warnings) == (0 if address else 1)


def test_several_networks_warning_names_the_label():
    result = run(make_container(ports={"80/tcp": None, "81/tcp": None},
                                networks=copy.deepcopy(TWO_NETS)), INTERNAL)
    assert result.services == []
    [warning] = result.warnings
    assert warning.label == "-"
    assert "registrator.network=" in warning.message
    assert "back, front" in warning.message


def test_network_label_naming_another_network_warns_and_skips():
    result = run(make_container(ports={"80/tcp": None}, labels={"registrator.network": "nope"},
                                networks=copy.deepcopy(TWO_NETS)), INTERNAL)
    assert result.services == []
    assert [w.label for w in result.warnings] == ["registrator.network"]


def test_network_label_is_ignored_without_internal():
    service = only(make_container(ports={"80/tcp": dual(8080)},
                                  labels={"registrator.network": "back"},
                                  networks=copy.deepcopy(TWO_NETS)))
    assert (service.address, service.port) == (HOST_IP, 8080)


@pytest.mark.parametrize(("labels", "addresses"), [
    ({"registrator.address": "198.51.100.7"}, {80: "198.51.100.7", 81: "198.51.100.7"}),
    ({"registrator.address": " FD00:0::7 "}, {80: "fd00::7", 81: "fd00::7"}),
    ({"registrator.81.address": "10.9.9.9"}, {80: HOST_IP, 81: "10.9.9.9"}),
    ({"registrator.address": "10.1.1.1", "registrator.81.address": "10.2.2.2"},
     {80: "10.1.1.1", 81: "10.2.2.2"}),
])
def test_address_label(labels, addresses):
    result = run(make_container(ports={"80/tcp": dual(8080), "81/tcp": dual(8081)},
                                labels=labels))
    assert result.warnings == []
    assert {int(s.id.rsplit(":", 1)[1]): s.address for s in result.services} == addresses


@pytest.mark.parametrize(("labels", "label", "left"), [
    ({"registrator.address": "not-an-ip"}, "registrator.address", []),
    ({"registrator.address": "0.0.0.0"}, "registrator.address", []),
    ({"registrator.address": "[fd00::7]"}, "registrator.address", []),
    ({"registrator.address": "10.0.0.256"}, "registrator.address", []),
    # An IPv6 zone is free text to ipaddress: a newline there would reach the consumers'
    # templates as a line of its own (issue 20, item 3).
    ({"registrator.address": "fe80::1%eth0\n    server x 10.6.6.6:80"}, "registrator.address",
     []),
    ({"registrator.address": "fe80::1%a b"}, "registrator.address", []),
    ({"registrator.81.address": "nope"}, "registrator.81.address", [80]),  # only that port
])
def test_bad_address_label_warns_once_and_skips_only_that_service(labels, label, left):
    result = run(make_container(ports={"80/tcp": dual(8080), "81/tcp": dual(8081)},
                                labels=labels))
    assert [w.label for w in result.warnings] == [label]
    assert sorted(int(s.id.rsplit(":", 1)[1]) for s in result.services) == left


@pytest.mark.parametrize(("bindings", "expected"), [
    ([binding(8080, "::1")], ("::1", 8080)),
    ([binding(8080, "[::1]")], ("::1", 8080)),  # bare, whatever the engine writes
    ([binding(8080, "fd00:0:0::5")], ("fd00::5", 8080)),
    ([binding(8080, "::")], (HOST_IP, 8080)),
    ([binding(8080, "::1"), binding(8080, "127.0.0.1")], ("127.0.0.1", 8080)),
])
def test_ipv6_published_bindings(bindings, expected):
    service = only(make_container(ports={"80/tcp": bindings}))
    assert (service.address, service.port) == expected


def test_ipv6_host_ip_is_registered_bare():
    service = only(make_container(ports={"80/tcp": dual(8080)}),
                   Policy(hostname="host1", host_ip="2001:db8::10"))
    assert service.address == "2001:db8::10"


# -- Swarm (issue 13) -----------------------------------------------------------------------
SWARM = {"com.docker.swarm.service.name": "stack_web", "com.docker.swarm.task.name":
         "stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c", "com.docker.swarm.task.id": "kq3x0u6f1k8m"}


@pytest.mark.parametrize(("labels", "ports", "names", "ids"), [
    (SWARM, ["80/tcp"], ["stack_web"], ["host1:stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c:80"]),
    (SWARM, ["80/tcp", "53/udp"], ["stack_web-53", "stack_web-80"],
     ["host1:stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c:53:udp",
      "host1:stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c:80"]),
    (SWARM | {"registrator.name": "api"}, ["80/tcp"], ["api"],
     ["host1:stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c:80"]),
    (SWARM | {"com.docker.compose.service": "composed"}, ["80/tcp"], ["composed"],
     ["host1:stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c:80"]),
    ({"com.docker.swarm.task.name": "bad/../name"}, ["80/tcp"], [], []),
])
def test_swarm_task_names(labels, ports, names, ids):
    container = make_container(name="/stack_web.2.kq3x0u6f1k8m7y3o4gq1n2b5c", labels=labels,
                               ports={p: dual(8000 + i) for i, p in enumerate(ports)})
    result = run(container)
    assert sorted(s.name for s in result.services) == names
    assert sorted(s.id for s in result.services) == ids
    assert len(result.warnings) == (0 if names else 1)
