"""Which address gets registered (SPEC §2-3, issue 13) on a real dockerd: the network label
with two user networks, the address label, IPv6 bindings and an IPv6-enabled network, and
one warning per bad label with only that service skipped."""

from __future__ import annotations

import ipaddress
import time
import uuid

import pytest
from harness import TEST_LABEL, published_port, wait_until

LOCAL = ("127.0.0.1", None)
EXPOSE = {"80/tcp": LOCAL}  # --internal registers the container port of published/exposed ones
SLEEP = "sleep 3600"
# --explicit: the daemon looks only at this test's containers on the shared dockerd.
ON = {"registrator.enable": "true"}


@pytest.fixture
def networks(docker_client, containers):
    made = []

    def create(ipv6: bool = False):
        kwargs = {}
        if ipv6:
            # A random ULA /64 of its own, so parallel runs cannot collide.
            word = uuid.uuid4().hex
            subnet = f"fd00:13:{word[:4]}:{word[4:8]}::/64"
            kwargs = {"enable_ipv6": True, "ipam": _ipam(subnet)}
        net = docker_client.networks.create(f"rt13-{uuid.uuid4().hex[:8]}",
                                            labels={TEST_LABEL: "net"}, **kwargs)
        made.append(net)
        return net

    yield create
    containers.remove_all()  # a network with containers attached cannot be removed
    for net in made:
        net.remove()


def _ipam(subnet):
    from docker.types import IPAMConfig, IPAMPool  # noqa: PLC0415 - only this fixture

    return IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)])


def ip_on(container, network, key="IPAddress"):
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network.name][key]


def entries_of(daemon, container):
    return [v for v in daemon.services().values() if v["container_id"] == container.id]


def on_two_networks(containers, networks, labels):
    front, back = networks(), networks()
    c = containers.run(SLEEP, network=front.name, labels={**ON, **labels}, ports=EXPOSE)
    back.connect(c)
    return c, front, back


@pytest.mark.parametrize("flags", [[], ["--network", "FRONT"]], ids=["plain", "with-network"])
def test_network_label_picks_the_network(start_daemon, containers, networks, flags):
    # One names a network it is not on; the other names its second network.
    c, front, back = on_two_networks(containers, networks, {"registrator.network": "elsewhere"})
    labels_fixed = containers.run(SLEEP, network=front.name, ports=EXPOSE,
                                  labels={**ON, "registrator.network": back.name})
    back.connect(labels_fixed)
    args = [a.replace("FRONT", front.name) for a in flags]
    daemon = start_daemon("--internal", "--explicit", *args)
    entry = wait_until(lambda: next(iter(entries_of(daemon, labels_fixed)), None),
                       message="the labelled container's entry")
    assert entry["address"] == ip_on(labels_fixed, back)  # not front, even with --network
    # The one whose label names no network of its own: one warning, nothing registered.
    wait_until(lambda: daemon.logged("bad label", label="registrator.network",
                                     container=c.name), message="a warning")
    assert entries_of(daemon, c) == []


def test_several_networks_without_a_choice_warn_once_naming_the_label(start_daemon,
                                                                     containers, networks):
    c, front, back = on_two_networks(containers, networks, {})
    witness = containers.run(SLEEP, network=front.name, labels=ON, ports=EXPOSE)
    daemon = start_daemon("--internal", "--explicit", "--resync", "1s")
    wait_until(lambda: entries_of(daemon, witness), message="the witness's entry")
    assert entries_of(daemon, witness)[0]["address"] == ip_on(witness, front)
    time.sleep(2.5)  # two resyncs: the warning is still said once
    said = daemon.logged("cannot register", container=c.name)
    assert len(said) == 1, said
    assert "registrator.network=<network>" in said[0]["problem"]
    assert entries_of(daemon, c) == []
    c_back = ip_on(c, back)
    assert c_back  # it does have addresses; the daemon just cannot know which one is meant


def test_address_label_and_one_warning_per_bad_label(start_daemon, containers):
    daemon = start_daemon("--explicit", "--resync", "1s")
    vip = containers.run(SLEEP, ports={"80/tcp": LOCAL},
                         labels={**ON, "registrator.address": "192.0.2.50"})
    mixed = containers.run(SLEEP, ports={"80/tcp": LOCAL, "81/tcp": LOCAL},
                           labels={**ON, "registrator.81.address": "not-an-ip"})
    bad_drain = containers.run(SLEEP, ports={"80/tcp": LOCAL},
                               labels={**ON, "registrator.drain": "sometimes"})
    entry = wait_until(lambda: next(iter(entries_of(daemon, vip)), None), message="vip entry")
    assert (entry["address"], entry["port"]) == ("192.0.2.50", published_port(vip, "80/tcp"))
    kept = wait_until(lambda: entries_of(daemon, mixed), message="the good port's entry")
    time.sleep(2.5)  # resyncs: still one warning each, still only the good port
    assert [e["port"] for e in entries_of(daemon, mixed)] == [published_port(mixed, "80/tcp")]
    assert kept[0]["address"] == "127.0.0.1"
    assert len(daemon.logged("bad label", label="registrator.81.address",
                             container=mixed.name)) == 1
    assert len(daemon.logged("bad label", label="registrator.drain",
                             container=bad_drain.name)) == 1
    assert entries_of(daemon, bad_drain) == []


def test_port_published_on_ipv6_loopback_registers_it_bare(start_daemon, containers):
    daemon = start_daemon("--explicit")
    c = containers.run(SLEEP, ports={"80/tcp": ("::1", None)}, labels=ON)
    entry = wait_until(lambda: next(iter(entries_of(daemon, c)), None), message="an entry")
    assert entry["address"] == "::1"
    assert entry["port"] == published_port(c, "80/tcp")


@pytest.mark.parametrize("ipv6", [False, True], ids=["default-ipv4", "ipv6-flag"])
def test_internal_on_a_dual_stack_network(start_daemon, containers, networks, ipv6):
    # dockerd 20.10 gives every network an IPv4 subnet (IPv6-only networks need Docker
    # 27's enable_ipv4=false): the IPv6-only case is tested from inspect data.
    net = networks(ipv6=True)
    c = containers.run(SLEEP, network=net.name, labels=ON, ports=EXPOSE)
    daemon = start_daemon("--internal", "--explicit", *(["--ipv6"] if ipv6 else []))
    entry = wait_until(lambda: next(iter(entries_of(daemon, c)), None), message="an entry")
    v4, v6 = ip_on(c, net), ip_on(c, net, "GlobalIPv6Address")
    assert ipaddress.ip_address(v6).version == 6
    assert (entry["address"], entry["port"]) == ((v6 if ipv6 else v4), 80)
