"""desired.desired_services: Docker inspect data + policy -> services (SPEC §2-3)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from registrator.desired import Policy, desired_services
from registrator.keys import segment_problem
from registrator.model import Desired, LabelWarning, Service

HOST_IP = "192.0.2.10"
POLICY = Policy(hostname="host1", host_ip=HOST_IP)
CID = "3f4e5d6c7b8a" * 5 + "0123"
BRIDGE = {"bridge": {"IPAddress": "172.17.0.5", "Gateway": "172.17.0.1"}}


def binding(host_port: int | str, host_ip: str = "0.0.0.0") -> dict[str, str]:
    return {"HostIp": host_ip, "HostPort": str(host_port)}


def dual(host_port: int) -> list[dict[str, str]]:
    """What `docker run -p` produces on a dual-stack host: one binding per family."""
    return [binding(host_port), binding(host_port, "::")]


def make_container(
    *,
    name: str = "/web",
    image: str = "nginx:1.25",
    labels: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    ports: dict[str, Any] | None = None,
    exposed: list[str] | None = None,
    network_mode: str = "bridge",
    networks: dict[str, Any] | None = None,
    running: bool = True,
    paused: bool = False,
    health: str | None = None,
) -> dict[str, Any]:
    """A Docker inspect dict shaped like the Engine API returns it (only the keys we read,
    plus a few neighbours so the code cannot rely on the dict being minimal)."""
    ports = {} if ports is None else ports
    state: dict[str, Any] = {"Status": "running" if running else "exited", "Running": running,
                             "Paused": paused, "Restarting": False, "Pid": 4242}
    if health is not None:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    env_list = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    env_list += [f"{k}={v}" for k, v in (env or {}).items()]
    return {
        "Id": CID,
        "Name": name,
        "Created": "2024-05-01T10:00:00.000000000Z",
        "State": state,
        "Config": {
            "Hostname": CID[:12],
            "Image": image,
            "Labels": dict(labels or {}),
            "Env": env_list,
            "ExposedPorts": {k: {} for k in (list(ports) if exposed is None else exposed)},
        },
        "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {
            "Ports": ports,
            "Networks": copy.deepcopy(BRIDGE) if networks is None else networks,
        },
    }


def run(container: Any, policy: Policy = POLICY) -> Desired:
    result = desired_services(container, policy)
    assert isinstance(result, Desired)
    return result


def only(container: dict[str, Any], policy: Policy = POLICY) -> Service:
    result = run(container, policy)
    assert result.warnings == []
    assert len(result.services) == 1, result.services
    return result.services[0]


def by_port(result: Desired) -> dict[tuple[int, str], Service]:
    """Services keyed by (host port, protocol) for readable assertions."""
    out = {(s.port, s.protocol): s for s in result.services}
    assert len(out) == len(result.services)
    return out


def assert_unique_keys(result: Desired) -> None:
    keys = [(s.name, s.id) for s in result.services]
    assert len(set(keys)) == len(keys), keys
    ids = [s.id for s in result.services]
    assert len(set(ids)) == len(ids), ids


# --- the basic case ----------------------------------------------------------------------------


def test_one_published_port_gives_one_service():
    service = only(make_container(ports={"80/tcp": [binding(8080)]}))
    assert service == Service(
        name="nginx", id="host1:web:80", address=HOST_IP, port=8080, protocol="tcp",
        host="host1", container_id=CID, container_name="/web", image="nginx:1.25",
        tags=(), meta=(), health="none",
    )


def test_port_on_both_families_is_one_service():
    service = only(make_container(ports={"80/tcp": dual(8080)}))
    assert (service.address, service.port, service.id) == (HOST_IP, 8080, "host1:web:80")


@pytest.mark.parametrize(
    ("bindings", "address"),
    [
        ([binding(8080, "10.1.2.3")], "10.1.2.3"),
        ([binding(8080, "127.0.0.1")], "127.0.0.1"),
        ([binding(8080, "2001:db8::5")], "2001:db8::5"),
        ([binding(8080, "")], HOST_IP),
        ([binding(8080, "::")], HOST_IP),
    ],
    ids=["specific-v4", "loopback", "specific-v6", "empty-host-ip", "v6-wildcard"],
)
def test_binding_address(bindings, address):
    service = only(make_container(ports={"80/tcp": bindings}))
    assert (service.address, service.port) == (address, 8080)


@pytest.mark.parametrize("unpublished", [None, []], ids=["none", "empty-list"])
def test_unpublished_ports_are_not_registered(unpublished):
    result = run(make_container(ports={"80/tcp": unpublished, "443/tcp": [binding(8443)]}))
    assert [(s.name, s.id, s.port) for s in result.services] == [
        ("nginx", "host1:web:443", 8443)
    ]


def test_no_ports_no_services():
    result = run(make_container(ports={}))
    assert (result.services, result.warnings) == ([], [])


def test_udp_port():
    service = only(make_container(ports={"53/udp": [binding(5353)]}))
    assert (service.protocol, service.port, service.id) == ("udp", 5353, "host1:web:53:udp")


def test_sctp_port_is_not_registered():
    result = run(make_container(ports={"9999/sctp": [binding(9999)], "80/tcp": [binding(80)]}))
    assert [(s.port, s.protocol) for s in result.services] == [(80, "tcp")]


# --- default names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("library/redis:7", "redis"),
        ("docker.io/library/redis", "redis"),
        ("localhost:5000/app", "app"),
        ("reg:5000/org/nginx:1.2@sha256:" + "a" * 64, "nginx"),
        ("ghcr.io/org/sub/tool@sha256:" + "b" * 64, "tool"),
        ("sha256:" + "c" * 64, "web"),
        ("", "web"),
    ],
    ids=["bare", "tag", "library-path", "docker-io", "registry-port", "registry-tag-digest",
         "digest-only", "image-id", "no-image"],
)
def test_default_name_is_image_base_name(image, expected):
    service = only(make_container(image=image, ports={"80/tcp": [binding(80)]}))
    assert service.name == expected
    assert service.image == image


def test_compose_service_label_is_default_name():
    service = only(make_container(
        name="/shop-api-1",
        labels={"com.docker.compose.service": "api", "com.docker.compose.project": "shop"},
        ports={"8000/tcp": [binding(32768)]},
    ))
    assert (service.name, service.id, service.container_name) == (
        "api", "host1:shop-api-1:8000", "/shop-api-1")


def test_name_label_beats_compose_service():
    service = only(make_container(
        labels={"com.docker.compose.service": "api", "registrator.name": "shop-api"},
        ports={"8000/tcp": [binding(8000)]},
    ))
    assert service.name == "shop-api"


# --- several ports -----------------------------------------------------------------------------

TWO_PORTS = {"80/tcp": dual(8080), "443/tcp": dual(8443)}


@pytest.mark.parametrize(
    ("labels", "env", "names"),
    [
        ({}, {}, {8080: "nginx-80", 8443: "nginx-443"}),
        ({"registrator.name": "shop"}, {}, {8080: "shop-80", 8443: "shop-443"}),
        ({}, {"SERVICE_NAME": "shop"}, {8080: "shop-80", 8443: "shop-443"}),
        ({"registrator.80.name": "http"}, {}, {8080: "http", 8443: "nginx-443"}),
        ({"registrator.80.name": "http", "registrator.443.name": "https"}, {},
         {8080: "http", 8443: "https"}),
        ({"SERVICE_443_NAME": "https", "registrator.name": "shop"}, {},
         {8080: "shop-80", 8443: "shop-443"}),
        ({"SERVICE_443_NAME": "https"}, {"SERVICE_NAME": "shop"},
         {8080: "shop-80", 8443: "https"}),
        ({"com.docker.compose.service": "api"}, {}, {8080: "api-80", 8443: "api-443"}),
    ],
    ids=["default", "ns-wide", "gl-wide-env", "ns-per-port", "ns-both-per-port",
         "ns-wide-beats-gl-port", "gl-per-port", "compose"],
)
def test_several_ports_names(labels, env, names):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS))
    assert result.warnings == []
    assert {s.port: s.name for s in result.services} == names
    assert {s.port: s.id for s in result.services} == {8080: "host1:web:80",
                                                      8443: "host1:web:443"}
    assert_unique_keys(result)


@pytest.mark.parametrize(
    ("labels", "env"),
    [({"registrator.id": "shop"}, {}), ({"SERVICE_ID": "shop"}, {}), ({}, {"SERVICE_ID": "shop"})],
    ids=["ns", "gl-label", "gl-env"],
)
def test_wide_id_label_covering_several_ports_gets_port_suffix(labels, env):
    ports = {"80/tcp": dual(8080), "53/tcp": [binding(53)], "53/udp": [binding(53)]}
    result = run(make_container(labels=labels, env=env, ports=ports))
    assert result.warnings == []
    assert {(s.port, s.protocol): s.id for s in result.services} == {
        (8080, "tcp"): "shop:80", (53, "tcp"): "shop:53", (53, "udp"): "shop:53:udp"}
    assert_unique_keys(result)


def test_wide_id_label_with_one_port_is_used_as_is():
    service = only(make_container(labels={"registrator.id": "shop"},
                                  ports={"80/tcp": [binding(80)]}))
    assert service.id == "shop"


def test_per_port_id_label_is_used_as_is():
    result = run(make_container(labels={"registrator.80.id": "front"}, ports=TWO_PORTS))
    assert {s.port: s.id for s in result.services} == {8080: "front", 8443: "host1:web:443"}


def test_tcp_and_udp_on_same_port_number_have_distinct_ids():
    result = run(make_container(ports={"53/tcp": [binding(53)], "53/udp": [binding(53)]}))
    assert {s.protocol: s.id for s in result.services} == {"tcp": "host1:web:53",
                                                         "udp": "host1:web:53:udp"}
    assert_unique_keys(result)


def test_gliderlabs_per_port_id_on_tcp_and_udp_does_not_collide():
    result = run(make_container(labels={"SERVICE_53_ID": "dns"},
                                ports={"53/tcp": [binding(53)], "53/udp": [binding(53)]}))
    assert len(result.services) == 2
    assert_unique_keys(result)


def test_ports_are_registered_in_a_stable_order():
    ports = {"443/tcp": [binding(8443)], "80/tcp": [binding(8080)], "53/udp": [binding(53)]}
    first = run(make_container(ports=ports)).services
    second = run(make_container(ports=dict(reversed(ports.items())))).services
    assert first == second


# --- tags and meta -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "env", "tags"),
    [
        ({"registrator.80.tags": "p", "registrator.tags": "w", "SERVICE_80_TAGS": "gp",
          "SERVICE_TAGS": "gw"}, {}, ("p",)),
        ({"registrator.tags": "w", "SERVICE_80_TAGS": "gp", "SERVICE_TAGS": "gw"}, {}, ("w",)),
        ({"SERVICE_80_TAGS": "gp", "SERVICE_TAGS": "gw"}, {}, ("gp",)),
        ({"SERVICE_TAGS": "gw"}, {}, ("gw",)),
        ({"SERVICE_TAGS": "label"}, {"SERVICE_TAGS": "env"}, ("label",)),
        ({}, {"SERVICE_TAGS": "env"}, ("env",)),
        ({}, {"SERVICE_80_TAGS": "env-port"}, ("env-port",)),
        ({"registrator.tags": ""}, {"SERVICE_TAGS": "env"}, ("env",)),
        ({"registrator.443.tags": "other"}, {}, ()),
        ({"registrator.tags": r"a\,b, c ,,d"}, {}, ("a,b", "c", "d")),
        ({"SERVICE_TAGS": r"urlprefix-/x\,/y,web"}, {}, ("urlprefix-/x,/y", "web")),
    ],
    ids=["ns-port-wins", "ns-wide-beats-gl", "gl-port-beats-gl-wide", "gl-wide",
         "label-beats-env", "env", "env-per-port", "empty-label-unset", "other-port",
         "ns-escape", "gl-escape"],
)
def test_tags_precedence(labels, env, tags):
    service = only(make_container(labels=labels, env=env, ports={"80/tcp": [binding(80)]}))
    assert service.tags == tags


@pytest.mark.parametrize(
    ("labels", "env", "value"),
    [
        ({"registrator.80.meta.k": "ns-port", "registrator.meta.k": "ns-wide",
          "SERVICE_80_K": "gl-port", "SERVICE_K": "gl-wide"}, {}, "ns-port"),
        ({"registrator.meta.k": "ns-wide", "SERVICE_80_K": "gl-port", "SERVICE_K": "gl-wide"},
         {}, "ns-wide"),
        ({"SERVICE_80_K": "gl-port", "SERVICE_K": "gl-wide"}, {}, "gl-port"),
        ({"SERVICE_K": "label"}, {"SERVICE_K": "env"}, "label"),
        ({}, {"SERVICE_K": "env"}, "env"),
        ({"SERVICE_K": ""}, {"SERVICE_K": "env"}, "env"),
    ],
    ids=["ns-port", "ns-wide", "gl-port", "label-beats-env", "env", "empty-label-unset"],
)
def test_meta_precedence(labels, env, value):
    service = only(make_container(labels=labels, env=env, ports={"80/tcp": [binding(80)]}))
    assert dict(service.meta) == {"k": value}


def test_meta_keys_and_exclusions():
    service = only(make_container(
        labels={
            "registrator.meta.Zone": "a", "SERVICE_REGION": "eu", "SERVICE_Owner": "team",
            "SERVICE_NAME": "web", "SERVICE_ID": "web-1", "SERVICE_TAGS": "t",
            "SERVICE_CHECK_HTTP": "/health", "SERVICE_80_CHECK_INTERVAL": "5s",
            "registrator.check.http": "/health", "SERVICE_80_NAME": "http",
        },
        env={"SERVICE_TIER": "front", "HOME": "/root"},
        ports={"80/tcp": [binding(80)]},
    ))
    assert service.meta == (("Zone", "a"), ("owner", "team"), ("region", "eu"),
                            ("tier", "front"))
    assert (service.name, service.id, service.tags) == ("http", "web-1", ("t",))


def test_meta_is_per_port():
    result = run(make_container(labels={"registrator.80.meta.proto": "http",
                                        "SERVICE_443_PROTO": "https"}, ports=TWO_PORTS))
    assert {s.port: s.meta for s in result.services} == {
        8080: (("proto", "http"),), 8443: (("proto", "https"),)}


def test_entry_that_is_too_big_is_skipped_with_a_warning():
    result = run(make_container(labels={"registrator.meta.blob": "x" * 70_000},
                                ports={"80/tcp": [binding(80)]}))
    assert result.services == []
    assert len(result.warnings) == 1
    assert result.warnings[0].container == "web"


# --- ignore ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({"registrator.enable": "false"}, {}),
        ({"registrator.enable": "FALSE"}, {}),
        ({"registrator.enable": "0"}, {}),
        ({"registrator.ignore": "true"}, {}),
        ({"registrator.ignore": "yes"}, {}),
        ({"SERVICE_IGNORE": "true"}, {}),
        ({"SERVICE_IGNORE": "1"}, {}),
        ({"SERVICE_IGNORE": "false"}, {}),
        ({}, {"SERVICE_IGNORE": "anything"}),
        ({"registrator.enable": "false", "registrator.name": "web"}, {}),
    ],
    ids=["enable-false", "enable-FALSE", "enable-0", "ignore-true", "ignore-yes",
         "gl-ignore-true", "gl-ignore-1", "gl-ignore-any-non-empty-even-false", "gl-ignore-env",
         "enable-false-beats-name"],
)
def test_ignored_container(labels, env):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS))
    assert (result.services, result.warnings) == ([], [])


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({"registrator.ignore": "false"}, {}),
        ({"registrator.enable": "true"}, {}),
        ({"SERVICE_IGNORE": ""}, {}),
        ({}, {"SERVICE_IGNORE": ""}),
    ],
    ids=["ignore-false", "enable-true", "gl-ignore-empty-label", "gl-ignore-empty-env"],
)
def test_not_ignored(labels, env):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS))
    assert result.warnings == []
    assert len(result.services) == 2


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({"registrator.80.ignore": "true"}, {}),
        ({"SERVICE_80_IGNORE": "true"}, {}),
        ({}, {"SERVICE_80_IGNORE": "x"}),
    ],
    ids=["ns", "gl-label", "gl-env"],
)
def test_ignored_port(labels, env):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS))
    assert result.warnings == []
    assert [(s.port, s.name, s.id) for s in result.services] == [
        (8443, "nginx", "host1:web:443")]


def test_per_port_ignore_false_keeps_the_port():
    result = run(make_container(labels={"registrator.80.ignore": "false"}, ports=TWO_PORTS))
    assert sorted(s.port for s in result.services) == [8080, 8443]


# --- --explicit --------------------------------------------------------------------------------

EXPLICIT = Policy(hostname="host1", host_ip=HOST_IP, explicit=True)


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({}, {}),
        ({"registrator.tags": "a", "registrator.meta.k": "v", "SERVICE_TAGS": "b"}, {}),
        ({"registrator.enable": "false", "registrator.name": "web"}, {}),
        ({"com.docker.compose.service": "api"}, {}),
        ({"registrator.80.tags": "x"}, {}),
    ],
    ids=["no-labels", "only-tags-and-meta", "enable-false", "compose-alone",
         "per-port-non-name"],
)
def test_explicit_without_opt_in_registers_nothing(labels, env):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS), EXPLICIT)
    assert (result.services, result.warnings) == ([], [])


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({"registrator.enable": "true"}, {}),
        ({"registrator.enable": " Yes "}, {}),
        ({"registrator.name": "shop"}, {}),
        ({"SERVICE_NAME": "shop"}, {}),
        ({}, {"SERVICE_NAME": "shop"}),
    ],
    ids=["enable-true", "enable-yes", "ns-name", "gl-name-label", "gl-name-env"],
)
def test_explicit_opt_in_whole_container(labels, env):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS), EXPLICIT)
    assert result.warnings == []
    assert sorted(s.port for s in result.services) == [8080, 8443]


@pytest.mark.parametrize(
    ("labels", "env"),
    [
        ({"registrator.80.name": "http"}, {}),
        ({"SERVICE_80_NAME": "http"}, {}),
        ({}, {"SERVICE_80_NAME": "http"}),
    ],
    ids=["ns", "gl-label", "gl-env"],
)
def test_explicit_per_port_name_opts_in_only_that_port(labels, env):
    result = run(make_container(labels=labels, env=env, ports=TWO_PORTS), EXPLICIT)
    assert result.warnings == []
    assert [(s.port, s.name, s.id) for s in result.services] == [
        (8080, "http", "host1:web:80")]


def test_explicit_per_port_name_for_udp_only():
    ports = {"53/tcp": [binding(53)], "53/udp": [binding(53)]}
    result = run(make_container(labels={"registrator.53/udp.name": "dns"}, ports=ports),
                 EXPLICIT)
    assert [(s.protocol, s.name) for s in result.services] == [("udp", "dns")]


# --- host networking ---------------------------------------------------------------------------


def host_net(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("exposed", [])
    return make_container(network_mode="host", ports={}, networks={"host": {"IPAddress": ""}},
                          **kwargs)


def test_host_network_ports_from_port_label():
    result = run(host_net(labels={"registrator.port": "80, 53/udp"}, exposed=["9000/tcp"]))
    assert result.warnings == []
    assert {(s.port, s.protocol): (s.name, s.id, s.address) for s in result.services} == {
        (80, "tcp"): ("nginx-80", "host1:web:80", HOST_IP),
        (53, "udp"): ("nginx-53", "host1:web:53:udp", HOST_IP),
    }


def test_host_network_port_from_gliderlabs_name():
    result = run(host_net(env={"SERVICE_8080_NAME": "web"}, exposed=["80/tcp"]))
    assert result.warnings == []
    tcp = [s for s in result.services if s.protocol == "tcp"]
    assert [(s.port, s.name, s.address) for s in tcp] == [(8080, "web", HOST_IP)]


def test_host_network_gliderlabs_name_does_not_invent_a_udp_service():
    result = run(host_net(env={"SERVICE_8080_NAME": "web"}))
    assert [(s.port, s.protocol) for s in result.services] == [(8080, "tcp")]


def test_host_network_ports_from_exposed_ports():
    result = run(host_net(exposed=["80/tcp", "9000/udp"]))
    assert result.warnings == []
    assert {(s.port, s.protocol): (s.name, s.address) for s in result.services} == {
        (80, "tcp"): ("nginx-80", HOST_IP), (9000, "udp"): ("nginx-9000", HOST_IP)}


def test_host_network_without_any_port_registers_nothing():
    result = run(host_net())
    assert (result.services, result.warnings) == ([], [])


def test_host_network_invalid_port_in_label_skips_only_that_port():
    result = run(host_net(labels={"registrator.port": "80,abc,53/udp,70000"}))
    assert sorted((s.port, s.protocol) for s in result.services) == [(53, "udp"), (80, "tcp")]
    assert {(w.container, w.label) for w in result.warnings} == {("web", "registrator.port")}
    assert len(result.warnings) == 2  # one per bad item, each naming its value
    assert any("abc" in w.message for w in result.warnings)
    assert any("70000" in w.message for w in result.warnings)


def test_host_network_all_invalid_port_label_does_not_fall_back_to_exposed():
    result = run(host_net(labels={"registrator.port": "8O"}, exposed=["80/tcp"]))
    assert result.services == []
    assert [(w.container, w.label) for w in result.warnings] == [("web", "registrator.port")]


def test_container_network_mode_registers_nothing():
    result = run(make_container(network_mode="container:" + "a" * 64, ports={},
                                exposed=["80/tcp"]))
    assert (result.services, result.warnings) == ([], [])


# --- --internal --------------------------------------------------------------------------------

INTERNAL = Policy(hostname="host1", host_ip=HOST_IP, internal=True)


def test_internal_uses_container_ip_and_container_port():
    container = make_container(
        ports={"80/tcp": [binding(8080)], "9000/tcp": None},
        exposed=["80/tcp", "9000/tcp", "7000/udp"],
    )
    result = run(container, INTERNAL)
    assert result.warnings == []
    assert {(s.port, s.protocol): (s.address, s.id) for s in result.services} == {
        (80, "tcp"): ("172.17.0.5", "host1:web:80"),
        (9000, "tcp"): ("172.17.0.5", "host1:web:9000"),
        (7000, "udp"): ("172.17.0.5", "host1:web:7000:udp"),
    }


def test_internal_published_port_not_in_exposed_is_registered():
    container = make_container(ports={"80/tcp": [binding(8080)]}, exposed=[])
    service = only(container, INTERNAL)
    assert (service.address, service.port) == ("172.17.0.5", 80)


TWO_NETS = {"front": {"IPAddress": "10.0.1.2"}, "back": {"IPAddress": "10.0.2.2"}}


@pytest.mark.parametrize(("network", "address"), [("front", "10.0.1.2"), ("back", "10.0.2.2")])
def test_internal_network_picks_the_network(network, address):
    policy = Policy(hostname="host1", host_ip=HOST_IP, internal=True, network=network)
    service = only(make_container(ports={"80/tcp": None}, networks=copy.deepcopy(TWO_NETS)),
                   policy)
    assert (service.address, service.port) == (address, 80)


def test_internal_several_networks_without_network_warns_and_registers_nothing():
    result = run(make_container(ports={"80/tcp": None}, networks=copy.deepcopy(TWO_NETS)),
                 INTERNAL)
    assert result.services == []
    assert len(result.warnings) == 1
    assert result.warnings[0].container == "web"
    assert "--network" in result.warnings[0].message


def test_internal_network_the_container_is_not_on_registers_nothing():
    policy = Policy(hostname="host1", host_ip=HOST_IP, internal=True, network="other")
    result = run(make_container(ports={"80/tcp": None}), policy)
    assert result.services == []


def test_internal_no_ip_registers_nothing():
    result = run(make_container(ports={"80/tcp": None}, networks={"none": {"IPAddress": ""}}),
                 INTERNAL)
    assert result.services == []


# --- state and health --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "paused"), [(False, False), (True, True), (False, True)],
    ids=["stopped", "paused", "stopped-and-paused"],
)
def test_not_running_or_paused_registers_nothing(running, paused):
    result = run(make_container(ports={"80/tcp": [binding(80)]}, running=running, paused=paused))
    assert (result.services, result.warnings) == ([], [])


@pytest.mark.parametrize("health", ["starting", "unhealthy"])
def test_unhealthy_is_not_registered(health):
    result = run(make_container(ports={"80/tcp": [binding(80)]}, health=health))
    assert (result.services, result.warnings) == ([], [])


@pytest.mark.parametrize("health", ["starting", "unhealthy", "healthy"])
def test_register_unhealthy_carries_the_health(health):
    policy = Policy(hostname="host1", host_ip=HOST_IP, register_unhealthy=True)
    service = only(make_container(ports={"80/tcp": [binding(80)]}, health=health), policy)
    assert service.health == health


def test_healthy_is_registered_with_its_health():
    service = only(make_container(ports={"80/tcp": [binding(80)]}, health="healthy"))
    assert service.health == "healthy"


def test_no_healthcheck_is_health_none():
    assert only(make_container(ports={"80/tcp": [binding(80)]})).health == "none"


# --- bad label values --------------------------------------------------------------------------

BAD_NAMES = {
    "slash": "a/b",
    "dotdot": "..",
    "inner-dotdot": "a..b",
    "dot": ".",
    "control-char": "web\x07",
    "newline": "web\nx",
    "nul": "we\x00b",
    "too-long": "x" * 256,
    "too-long-utf8": "é" * 128,
    "leading-space": " web",
}


@pytest.mark.parametrize("bad", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@pytest.mark.parametrize("label", ["registrator.name", "SERVICE_NAME", "registrator.80.name",
                                   "SERVICE_80_NAME"])
def test_bad_name_label_skips_the_service_with_one_warning(label, bad):
    result = run(make_container(labels={label: bad}, ports={"80/tcp": [binding(80)]}))
    assert result.services == []
    assert [(w.container, w.label) for w in result.warnings] == [("web", label)]


def test_name_of_255_bytes_is_fine():
    service = only(make_container(labels={"registrator.name": "n" * 255},
                                  ports={"80/tcp": [binding(80)]}))
    assert service.name == "n" * 255


@pytest.mark.parametrize("label", ["registrator.80.name", "SERVICE_80_NAME"])
def test_bad_per_port_name_skips_only_that_port(label):
    result = run(make_container(labels={label: "a/b"}, ports=TWO_PORTS))
    assert [(s.port, s.name) for s in result.services] == [(8443, "nginx-443")]
    assert [(w.container, w.label) for w in result.warnings] == [("web", label)]


@pytest.mark.parametrize("label", ["registrator.id", "registrator.80.id", "SERVICE_ID"])
def test_bad_id_label_skips_the_service_with_one_warning(label):
    result = run(make_container(labels={label: "x/../y"}, ports={"80/tcp": [binding(80)]}))
    assert result.services == []
    assert [(w.container, w.label) for w in result.warnings] == [("web", label)]


def test_bad_per_port_id_skips_only_that_port():
    result = run(make_container(labels={"registrator.80.id": "a\x00b"}, ports=TWO_PORTS))
    assert [s.port for s in result.services] == [8443]
    assert [(w.container, w.label) for w in result.warnings] == [("web", "registrator.80.id")]


def test_bad_wide_name_on_several_ports_is_one_warning():
    result = run(make_container(labels={"registrator.name": "a/b"}, ports=TWO_PORTS))
    assert result.services == []
    assert [(w.container, w.label) for w in result.warnings] == [("web", "registrator.name")]


@pytest.mark.parametrize("value", ["maybe", " ", "2", "truee"])
def test_malformed_enable_skips_container_with_one_warning(value):
    result = run(make_container(labels={"registrator.enable": value},
                                ports={"80/tcp": [binding(80)]}))
    assert result.services == []
    assert [(w.container, w.label) for w in result.warnings] == [("web", "registrator.enable")]


def test_empty_enable_counts_as_unset():
    service = only(make_container(labels={"registrator.enable": ""},
                                  ports={"80/tcp": [binding(80)]}))
    assert service.name == "nginx"


def test_malformed_ignore_skips_container_with_one_warning():
    result = run(make_container(labels={"registrator.ignore": "perhaps"}, ports=TWO_PORTS))
    assert result.services == []
    assert [(w.container, w.label) for w in result.warnings] == [("web", "registrator.ignore")]


def test_malformed_per_port_ignore_skips_only_that_port():
    result = run(make_container(labels={"registrator.80.ignore": "perhaps"}, ports=TWO_PORTS))
    assert [s.port for s in result.services] == [8443]
    assert [(w.container, w.label) for w in result.warnings] == [
        ("web", "registrator.80.ignore")]


@pytest.mark.parametrize("label", ["registrator.0.name", "registrator.80/sctp.tags",
                                   "registrator.bogus", "SERVICE_0_NAME"])
def test_unreadable_label_is_warned_and_the_rest_goes_on(label):
    result = run(make_container(labels={label: "x"}, ports={"80/tcp": [binding(80)]}))
    assert [(s.name, s.port) for s in result.services] == [("nginx", 80)]
    assert [(w.container, w.label) for w in result.warnings] == [("web", label)]


def test_every_produced_service_has_valid_segments():
    labels = {"registrator.80.name": "http", "registrator.id": "shop", "SERVICE_TAGS": "a,b"}
    ports = {**TWO_PORTS, "53/udp": [binding(53)]}
    result = run(make_container(labels=labels, ports=ports))
    assert len(result.services) == 3
    for service in result.services:
        assert segment_problem(service.name) is None
        assert segment_problem(service.id) is None
    assert_unique_keys(result)


# --- malformed inspect data --------------------------------------------------------------------


def _mutated(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    container = make_container(ports={"80/tcp": [binding(80)]})
    target = container
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return container


_DELETE = object()

MALFORMED = {
    "empty-dict": {},
    "none": None,
    "list": [],
    "string": "container",
    "int": 42,
    "state-none": _mutated(("State",), None),
    "state-string": _mutated(("State",), "running"),
    "health-string": _mutated(("State", "Health"), "healthy"),
    "no-config": _mutated(("Config",), _DELETE),
    "config-none": _mutated(("Config",), None),
    "config-list": _mutated(("Config",), []),
    "labels-list": _mutated(("Config", "Labels"), ["registrator.name=x"]),
    "label-int-value": _mutated(("Config", "Labels"), {"registrator.name": 5}),
    "label-int-key": _mutated(("Config", "Labels"), {5: "x"}),
    "env-int": _mutated(("Config", "Env"), 5),
    "env-none-item": _mutated(("Config", "Env"), [None]),
    "exposed-list": _mutated(("Config", "ExposedPorts"), ["80/tcp"]),
    "no-hostconfig": _mutated(("HostConfig",), _DELETE),
    "hostconfig-none": _mutated(("HostConfig",), None),
    "network-mode-int": _mutated(("HostConfig", "NetworkMode"), 7),
    "ports-list": _mutated(("NetworkSettings", "Ports"), ["80/tcp"]),
    "bindings-dict": _mutated(("NetworkSettings", "Ports"), {"80/tcp": binding(80)}),
    "binding-none": _mutated(("NetworkSettings", "Ports"), {"80/tcp": [None]}),
    "binding-bad-ip": _mutated(("NetworkSettings", "Ports"),
                               {"80/tcp": [binding(80, "not-an-ip")]}),
    "no-id": _mutated(("Id",), _DELETE),
}


@pytest.mark.parametrize("container", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_inspect_data_warns_and_never_raises(container):
    result = run(copy.deepcopy(container))
    assert result.services == []
    assert len(result.warnings) >= 1
    assert all(isinstance(w, LabelWarning) for w in result.warnings)
    assert all(isinstance(w.container, str) and w.container for w in result.warnings)


def test_malformed_data_warning_names_the_container():
    result = run(_mutated(("Config", "Env"), 5))
    assert [w.container for w in result.warnings] == ["web"]


ODD_BUT_HARMLESS = {
    "networksettings-none": _mutated(("NetworkSettings",), None),
    "no-networksettings": _mutated(("NetworkSettings",), _DELETE),
    "ports-none": _mutated(("NetworkSettings", "Ports"), None),
    "labels-none": _mutated(("Config", "Labels"), None),
    "env-none": _mutated(("Config", "Env"), None),
    "exposed-none": _mutated(("Config", "ExposedPorts"), None),
    "health-none": _mutated(("State", "Health"), None),
    "binding-empty-port": _mutated(("NetworkSettings", "Ports"), {"80/tcp": [binding("")]}),
    "binding-word-port": _mutated(("NetworkSettings", "Ports"), {"80/tcp": [binding("http")]}),
    "port-key-garbage": _mutated(("NetworkSettings", "Ports"), {"eighty": [binding(80)]}),
    "state-empty": _mutated(("State",), {}),
    "name-missing": _mutated(("Name",), _DELETE),
}


@pytest.mark.parametrize("container", list(ODD_BUT_HARMLESS.values()), ids=list(ODD_BUT_HARMLESS))
def test_odd_inspect_data_never_raises(container):
    result = run(copy.deepcopy(container))
    assert all(isinstance(s, Service) for s in result.services)
    assert all(isinstance(w, LabelWarning) for w in result.warnings)


def test_gliderlabs_key_with_unicode_digit_does_not_drop_the_container():
    result = run(make_container(labels={"SERVICE_²_NAME": "x"}, ports={"80/tcp": [binding(80)]}))
    assert [(s.name, s.port) for s in result.services] == [("nginx", 80)]


def test_restarting_container_is_not_registered():
    c = make_container(ports={"80/tcp": [binding(8080)]})
    c["State"]["Restarting"] = True
    assert run(c).services == []
