"""What gets registered (SPEC §2-3), checked against a real dockerd and etcd."""

from __future__ import annotations

import json
import uuid

import pytest
from harness import BUSYBOX_IMAGE, published_port, wait_until
from zk_harness import both_stores

LOCAL = ("127.0.0.1", None)  # publish on loopback only, random host port


def by_name(entries):
    return {v["name"]: v for v in entries.values()}


@both_stores
def test_multi_port_udp_and_dual_stack_dedupe(start_daemon, containers):
    daemon = start_daemon()
    # Published on all addresses: Docker lists 0.0.0.0 and [::] bindings for each port.
    c = containers.run("sh -c 'httpd -p 80; nc -lk -u -p 53 -e cat; sleep 600'",
                       ports={"80/tcp": None, "81/tcp": None, "53/udp": None},
                       labels={"registrator.tags": "x"})
    entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) >= 3 and e,
                         message="three entries")
    assert len(entries) == 3  # not six: each port once despite two bindings
    names = by_name(entries)
    assert set(names) == {"busybox-80", "busybox-81", "busybox-53"}
    udp = names["busybox-53"]
    assert udp["protocol"] == "udp"
    assert udp["id"] == f"{daemon.hostname}:{c.name}:53:udp"
    assert udp["port"] == published_port(c, "53/udp")
    assert names["busybox-80"]["address"] == "127.0.0.1"  # the --ip for wildcard bindings


def test_gliderlabs_labels_and_env_with_precedence(start_daemon, containers):
    daemon = start_daemon()
    containers.run(
        ports={"80/tcp": LOCAL, "443/tcp": LOCAL},
        environment={"SERVICE_NAME": "from-env", "SERVICE_TAGS": "env", "SERVICE_REGION": "eu",
                     "SERVICE_443_NAME": "secure"},
        labels={"SERVICE_TAGS": "lbl,a\\,b", "SERVICE_80_ID": "web-80",
                "SERVICE_VERSION": "2"},
    )
    entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) == 2 and e,
                         message="two entries")
    names = by_name(entries)
    assert set(names) == {"from-env-80", "secure"}
    web = names["from-env-80"]
    assert web["id"] == "web-80"
    assert web["tags"] == ["lbl", "a,b"]  # the label beats the env var
    assert web["meta"] == {"region": "eu", "version": "2"}
    assert names["secure"]["id"].endswith(":443")


def test_namespaced_beats_gliderlabs(start_daemon, containers):
    daemon = start_daemon()
    containers.run(ports={"80/tcp": LOCAL},
                   labels={"registrator.name": "ns", "SERVICE_NAME": "gl",
                           "registrator.80.tags": "port", "registrator.tags": "wide"})
    entry = wait_until(lambda: next(iter(daemon.mine(containers).values()), None),
                       message="an entry")
    assert (entry["name"], entry["tags"]) == ("ns", ["port"])


def test_explicit_mode_registers_only_opted_in(start_daemon, containers):
    daemon = start_daemon("--explicit")
    containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.enable": "true"})
    containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "named"})
    containers.run(ports={"80/tcp": LOCAL}, environment={"SERVICE_NAME": "gl-env"})
    containers.run(ports={"80/tcp": LOCAL, "81/tcp": LOCAL},
                   labels={"SERVICE_81_NAME": "only-81"})
    plain = containers.run(ports={"80/tcp": LOCAL})
    entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) >= 4 and e,
                         message="four entries")
    assert set(by_name(entries)) == {"busybox", "named", "gl-env", "only-81"}
    assert all(v["container_id"] != plain.id for v in entries.values())


@pytest.mark.parametrize("labels", [
    {"registrator.enable": "false"},
    {"registrator.ignore": "true"},
    {"SERVICE_IGNORE": "yes"},
    {"registrator.80.ignore": "true"},
    {"SERVICE_80_IGNORE": "1"},
], ids=lambda d: next(iter(d)))
def test_ignore_forms(start_daemon, containers, labels):
    daemon = start_daemon()
    ignored = containers.run(ports={"80/tcp": LOCAL}, labels=labels)
    # A container started after the ignored one: once it shows up, the ignored one has
    # been looked at too (events are handled in order).
    witness = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "witness"})
    entries = wait_until(lambda: daemon.mine(containers), message="the witness")
    assert {v["container_id"] for v in entries.values()} == {witness.id}
    assert ignored.id not in {v["container_id"] for v in daemon.services().values()}


def test_host_networking_uses_label_ports(start_daemon, containers):
    daemon = start_daemon()
    port = 20000 + uuid.uuid4().int % 20000
    containers.run(f"httpd -f -p 127.0.0.1:{port}", network_mode="host",
                   labels={"registrator.port": f"{port},{port}/udp",
                           "registrator.name": "hostnet"})
    entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) == 2 and e,
                         message="two entries")
    got = sorted((v["name"], v["port"], v["protocol"], v["address"]) for v in entries.values())
    assert got == [("hostnet-" + str(port), port, "tcp", "127.0.0.1"),
                   ("hostnet-" + str(port), port, "udp", "127.0.0.1")]


def test_internal_mode_uses_container_ip_and_port(start_daemon, containers, docker_client):
    net = docker_client.networks.create(f"regtest-{uuid.uuid4().hex[:8]}")
    try:
        daemon = start_daemon("--internal", "--network", net.name)
        api = docker_client.api
        # Port 80 only exposed, 81 also published: internal mode registers both, at the
        # container's own address and the container port.
        cid = api.create_container(
            BUSYBOX_IMAGE, "httpd -f -p 80", ports=[80, 81],
            labels={"registrator-test": "app", "registrator.name": "inner"},
            host_config=api.create_host_config(port_bindings={81: ("127.0.0.1", None)}),
            networking_config=api.create_networking_config(
                {net.name: api.create_endpoint_config()}))["Id"]
        containers.ids.append(cid)
        api.start(cid)
        entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) == 2 and e,
                             message="two entries")
        ip = api.inspect_container(cid)["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        assert sorted((v["address"], v["port"]) for v in entries.values()) == [
            (ip, 80), (ip, 81)]
    finally:
        containers.remove_all()
        net.remove()


@both_stores
def test_gliderlabs_layout_keys(start_daemon, containers):
    daemon = start_daemon("--layout", "gliderlabs")
    c = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "legacy"})
    key = f"{daemon.prefix}/legacy/{daemon.hostname}:{c.name}:80"
    value = wait_until(lambda: daemon.etcd.view.items(key).get(key), message=key)
    assert value.decode() == f"127.0.0.1:{published_port(c, '80/tcp')}"
    c.stop(timeout=1)
    wait_until(lambda: not daemon.etcd.view.items(key), message=f"{key} removed")


def test_bad_labels_warn_once_and_skip_only_that_service(start_daemon, containers):
    daemon = start_daemon()
    bad = containers.run(ports={"80/tcp": LOCAL, "81/tcp": LOCAL},
                         labels={"registrator.80.name": "a/../b", "registrator.81.name": "ok"})
    good = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "fine"})
    entries = wait_until(lambda: (e := daemon.mine(containers)) and len(e) == 2 and e,
                         message="two entries")
    assert set(by_name(entries)) == {"ok", "fine"}
    assert {v["container_id"] for v in entries.values()} == {bad.id, good.id}
    warnings = daemon.logged("bad label", container=bad.name, label="registrator.80.name")
    assert len(warnings) == 1
    assert "'/'" in warnings[0]["problem"]


def test_compose_service_is_the_default_name(start_daemon, containers):
    daemon = start_daemon()
    containers.run(ports={"80/tcp": LOCAL},
                   labels={"com.docker.compose.service": "frontend",
                           "com.docker.compose.project": "shop"})
    entry = wait_until(lambda: next(iter(daemon.mine(containers).values()), None),
                       message="an entry")
    assert entry["name"] == "frontend"


def test_rename_moves_the_default_id(start_daemon, containers):
    daemon = start_daemon()
    c = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "ren"})
    wait_until(lambda: daemon.mine(containers), message="an entry")
    new_name = f"renamed-{uuid.uuid4().hex[:6]}"
    c.rename(new_name)
    wait_until(lambda: [v["id"] for v in daemon.mine(containers).values()]
               == [f"{daemon.hostname}:{new_name}:80"], message="the entry under its new id")


@both_stores
def test_skydns_and_etcd_naming_layouts(start_daemon, containers):
    daemon = start_daemon("--layout", "skydns", "--layout", "etcd-naming",
                          "--skydns-domain", "example.local")
    c = containers.run(ports={"80/tcp": LOCAL}, labels={"registrator.name": "dnsweb"})
    port = published_port(c, "80/tcp")
    view = daemon.etcd.view
    sky = wait_until(lambda: view.items(f"{daemon.prefix}/skydns/local/example/dnsweb/"),
                     message="a skydns record")
    assert [json.loads(v) for v in sky.values()] == [{"host": "127.0.0.1", "port": port}]
    naming = f"{daemon.prefix}/naming/dnsweb/127.0.0.1:{port}"
    assert json.loads(view.items(naming)[naming])["Addr"] == f"127.0.0.1:{port}"
    c.stop(timeout=1)
    # Only this service's keys: other containers on the shared dockerd have records too.
    wait_until(lambda: not view.items(f"{daemon.prefix}/skydns/local/example/dnsweb/")
               and not view.items(f"{daemon.prefix}/naming/dnsweb/"), message="both removed")
