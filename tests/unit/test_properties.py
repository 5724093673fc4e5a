"""Property tests: whatever labels, env and names a container carries, desired_services never
raises, and what it produces renders to keys inside the prefix and JSON that reads back."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from registrator.desired import Policy, desired_services
from registrator.errors import InvalidKeyError
from registrator.keys import KeySpace, segment_problem
from registrator.layouts import Renderer, parse_entry
from registrator.model import Desired, LabelWarning

PREFIX = "/registrator"
RENDERER = Renderer(KeySpace(PREFIX), ("gliderlabs",))
NOW = "2024-05-01T10:00:00+00:00"

REAL_KEYS = [
    "registrator.enable", "registrator.name", "registrator.id", "registrator.tags",
    "registrator.ignore", "registrator.port", "registrator.meta.k", "registrator.check.http",
    "registrator.80.name", "registrator.80.id", "registrator.80.tags", "registrator.80.ignore",
    "registrator.80.meta.k", "registrator.53/udp.name", "registrator.53/udp.id",
    "registrator.443.name", "registrator.0.name", "registrator.80/sctp.name",
    "SERVICE_NAME", "SERVICE_ID", "SERVICE_TAGS", "SERVICE_IGNORE", "SERVICE_REGION",
    "SERVICE_80_NAME", "SERVICE_80_ID", "SERVICE_53_ID", "SERVICE_53_NAME", "SERVICE_80_IGNORE",
    "SERVICE_CHECK_HTTP", "SERVICE_0_NAME", "com.docker.compose.service",
]
# Characters that have broken key builders elsewhere, plus anything else.
NASTY = ["/", ".", "..", "\x00", "\n", "\r", "\t", " ", ",", "\\", "\\,", ":", "_", "=", "é",
         "\u2028", "\ud800", "²", "٣", "\uff18", "\U0001f600", "\x7f", "-", "80", "/udp"]

nasty_text = st.lists(
    st.one_of(st.sampled_from(NASTY), st.characters(exclude_categories=()),
              st.text(max_size=8)),
    max_size=24,
).map("".join)
long_text = st.one_of(nasty_text, st.builds(lambda s, n: s * n, nasty_text,
                                            st.integers(1, 200)).map(lambda s: s[:4096]))
label_key = st.one_of(
    st.sampled_from(REAL_KEYS),
    st.builds(lambda p, t: p + t, st.sampled_from(["registrator.", "registrator.80.",
                                                  "registrator.meta.", "SERVICE_",
                                                  "SERVICE_80_"]), nasty_text),
    nasty_text,
)
label_value = st.one_of(
    st.sampled_from(["", "true", "false", "web", "a/b", "..", "80,53/udp", "1", "x" * 300]),
    long_text,
)
labels = st.dictionaries(label_key, label_value, max_size=8)
env = st.lists(st.builds(lambda k, v: f"{k}={v}", label_key, label_value), max_size=4)
# Mostly realistic names, so that many examples get as far as producing services.
container_name = st.one_of(st.sampled_from(["/web", "/shop-api-1"]),
                           st.sampled_from(["/db", "/x_y.z", "/"]),
                           st.builds(lambda t: "/" + t, nasty_text), nasty_text)
images = st.sampled_from(["nginx:1.25", "reg:5000/org/nginx:1.2@sha256:" + "a" * 64,
                          "sha256:" + "b" * 64, "", "weird/../image:tag"])


def _binding(port: int, ip: str = "0.0.0.0") -> dict[str, str]:
    return {"HostIp": ip, "HostPort": str(port)}


PORT_SETUPS = [
    {},
    {"80/tcp": [_binding(8080), _binding(8080, "::")]},
    {"80/tcp": [_binding(8080)], "443/tcp": [_binding(8443)], "9000/tcp": None},
    {"53/tcp": [_binding(53)], "53/udp": [_binding(53)]},
    {"80/tcp": [_binding(80, "10.0.0.2")], "53/udp": [_binding(5353, "2001:db8::2")]},
]
policies = st.builds(
    Policy,
    hostname=st.sampled_from(["host1", "h"]),
    host_ip=st.sampled_from(["192.0.2.10", "2001:db8::10"]),
    internal=st.sampled_from([False, False, True]),
    network=st.sampled_from([None, None, "bridge", "other"]),
    explicit=st.sampled_from([False, False, True]),
    register_unhealthy=st.booleans(),
)


@st.composite
def containers(draw: st.DrawFn) -> dict[str, Any]:
    ports = draw(st.sampled_from(PORT_SETUPS))
    mode = draw(st.sampled_from(["bridge", "host", "default"]))
    health = draw(st.sampled_from([None, None, "healthy", "unhealthy", "starting"]))
    state: dict[str, Any] = {"Running": True,
                             "Paused": draw(st.sampled_from([False, False, False, True]))}
    if health is not None:
        state["Health"] = {"Status": health}
    return {
        "Id": "f" * 64,
        "Name": draw(container_name),
        "State": state,
        "Config": {
            "Image": draw(images),
            "Labels": draw(labels),
            "Env": draw(env),
            "ExposedPorts": {k: {} for k in [*ports, *draw(st.sampled_from([[], ["7000/udp"]]))]},
        },
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {
            "Ports": {} if mode == "host" else ports,
            "Networks": {"bridge": {"IPAddress": "172.17.0.5"}},
        },
    }


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(container=containers(), policy=policies)
def test_desired_services_never_raises_and_renders_inside_the_prefix(container, policy):
    result = desired_services(container, policy)
    assert isinstance(result, Desired)
    assert all(isinstance(w, LabelWarning) for w in result.warnings)
    event(f"services: {min(len(result.services), 3)}")
    for service in result.services:
        rendered = RENDERER.render(service, NOW)
        assert rendered
        for key in rendered:
            assert key.startswith(PREFIX + "/")
            assert "/../" not in key
            assert "\x00" not in key
        primary = rendered[RENDERER.primary_key(service)]
        assert json.loads(primary) == service.to_record(NOW)
        # The label check gates the entry but is not stored.
        assert parse_entry(primary.encode()) == (replace(service, check=None), NOW)


@PROPERTY_SETTINGS
@given(
    container=containers(),
    policy=policies,
    junk=st.dictionaries(st.sampled_from(["State", "Config", "HostConfig", "NetworkSettings",
                                          "Id", "Name"]),
                         st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                   st.lists(st.none(), max_size=2),
                                   st.dictionaries(st.text(max_size=5), st.none(),
                                                   max_size=2)),
                         max_size=3),
)
def test_desired_services_never_raises_on_junk_inspect_data(container, policy, junk):
    container.update(junk)
    result = desired_services(container, policy)
    assert isinstance(result, Desired)
    for service in result.services:
        assert all(key.startswith(PREFIX + "/") for key in RENDERER.render(service, NOW))


@PROPERTY_SETTINGS
@given(name=nasty_text, sid=nasty_text)
def test_keyspace_never_builds_a_key_outside_the_prefix(name, sid):
    keys = KeySpace(PREFIX)
    if segment_problem(name) is not None or segment_problem(sid) is not None:
        with pytest.raises(InvalidKeyError):
            keys.service(name, sid)
        return
    key = keys.service(name, sid)
    assert key.startswith(PREFIX + "/services/")
    assert keys.parse_service(key) == (name, sid)
