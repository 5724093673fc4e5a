"""layouts.Renderer and parse_entry: what a Service becomes in the store (SPEC §4)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from registrator.errors import InvalidKeyError
from registrator.keys import KeySpace
from registrator.layouts import RESERVED_NAMES, Renderer, host_port, parse_entry
from registrator.model import FORMAT_VERSION, Service

NOW = "2024-05-01T10:00:00+00:00"
SPEC_FIELDS = {"name", "id", "address", "port", "protocol", "tags", "meta", "host",
               "container_id", "container_name", "image", "health", "registered_at"}


def make_service(**overrides) -> Service:
    fields = {
        "name": "web", "id": "host1:web:80", "address": "192.0.2.10", "port": 8080,
        "protocol": "tcp", "host": "host1", "container_id": "c" * 64, "container_name": "/web",
        "image": "nginx:1.25", "tags": ("a", "b,c"), "meta": (("region", "eu"), ("tier", "1")),
        "health": "healthy",
    }
    fields.update(overrides)
    return Service(**fields)


@pytest.fixture
def primary():
    return Renderer(KeySpace("/registrator"))


@pytest.fixture
def gliderlabs():
    return Renderer(KeySpace("/registrator"), ("gliderlabs",))


def test_primary_entry_has_every_spec_field(primary):
    rendered = primary.render(make_service(), NOW)
    assert list(rendered) == ["/registrator/services/web/host1:web:80",
                              "/registrator/index/host1/web/host1:web:80"]
    # The index entry names the primary key: how a host finds its own entries.
    assert rendered["/registrator/index/host1/web/host1:web:80"] == (
        "/registrator/services/web/host1:web:80")
    record = json.loads(rendered["/registrator/services/web/host1:web:80"])
    assert set(record) >= SPEC_FIELDS
    assert record["version"] == FORMAT_VERSION
    assert isinstance(record["version"], int)
    assert record["port"] == 8080
    assert isinstance(record["port"], int)
    assert not isinstance(record["port"], bool)
    assert record["tags"] == ["a", "b,c"]
    assert record["meta"] == {"region": "eu", "tier": "1"}
    assert record["container_name"] == "/web"
    assert record["registered_at"] == NOW
    assert (record["name"], record["id"], record["address"], record["protocol"],
            record["host"], record["container_id"], record["image"], record["health"]) == (
        "web", "host1:web:80", "192.0.2.10", "tcp", "host1", "c" * 64, "nginx:1.25", "healthy")


def test_empty_tags_and_meta_are_list_and_object(primary):
    record = json.loads(next(iter(primary.render(make_service(tags=(), meta=()), NOW).values())))
    assert record["tags"] == []
    assert record["meta"] == {}


def test_primary_value_is_deterministic(primary):
    service = make_service()
    assert primary.render(service, NOW) == primary.render(service, NOW)


def test_gliderlabs_layout_adds_ip_port_key(gliderlabs):
    rendered = gliderlabs.render(make_service(), NOW)
    assert rendered["/registrator/web/host1:web:80"] == "192.0.2.10:8080"
    assert "/registrator/services/web/host1:web:80" in rendered
    assert len(rendered) == 3  # primary, index, gliderlabs


@pytest.mark.parametrize(
    ("address", "expected"),
    [("2001:db8::5", "[2001:db8::5]:8080"), ("::1", "[::1]:8080"),
     ("10.0.0.1", "10.0.0.1:8080")],
)
def test_gliderlabs_value_brackets_ipv6(gliderlabs, address, expected):
    rendered = gliderlabs.render(make_service(address=address), NOW)
    assert rendered["/registrator/web/host1:web:80"] == expected


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [("10.0.0.1", 80, "10.0.0.1:80"), ("fe80::1", 53, "[fe80::1]:53"),
     ("not-an-ip", 1, "not-an-ip:1")],
)
def test_host_port(address, port, expected):
    assert host_port(address, port) == expected


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_reserved_names_get_no_gliderlabs_key(gliderlabs, name):
    assert {"services", "hosts", "config"} <= RESERVED_NAMES
    rendered = gliderlabs.render(make_service(name=name), NOW)
    assert list(rendered) == [f"/registrator/services/{name}/host1:web:80",
                              f"/registrator/index/host1/{name}/host1:web:80"]


def test_all_keys_under_prefix():
    renderer = Renderer(KeySpace("//deep//prefix/"), ("gliderlabs",))
    rendered = renderer.render(make_service(), NOW)
    assert rendered
    assert all(key.startswith("/deep/prefix/") for key in rendered)
    assert set(renderer.owned_keys(make_service())) == set(rendered)


@pytest.mark.parametrize(
    "overrides", [{"name": "a/b"}, {"id": ".."}, {"name": ""}, {"id": "x\ny"}],
)
def test_unsafe_segments_raise_and_own_no_keys(gliderlabs, overrides):
    service = make_service(**overrides)
    with pytest.raises(InvalidKeyError):
        gliderlabs.render(service, NOW)
    assert gliderlabs.owned_keys(service) == []


@pytest.mark.parametrize(
    "service",
    [
        make_service(),
        make_service(tags=(), meta=(), health="none", protocol="udp", port=53),
        make_service(address="2001:db8::5", name="ünï", meta=(("k", 'ü"\\\n'),)),
    ],
    ids=["full", "minimal", "unicode"],
)
def test_parse_entry_round_trips(primary, service):
    value = next(iter(primary.render(service, NOW).values()))
    assert parse_entry(value.encode()) == (service, NOW)


def test_parse_entry_tolerates_missing_or_odd_registered_at(primary):
    record = make_service().to_record(NOW)
    del record["registered_at"]
    assert parse_entry(json.dumps(record).encode()) == (make_service(), "")
    record["registered_at"] = 5
    assert parse_entry(json.dumps(record).encode())[1] == ""


def _record_with(**changes):
    record = make_service().to_record(NOW)
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record).encode()


_DROP = object()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"{",
        b"\xff\xfe",
        b"null",
        b"42",
        b'"string"',
        b"[]",
        b'[{"name": "web"}]',
        b"{}",
        _record_with(port="8080"),
        _record_with(port=80.5),
        _record_with(port=True),
        _record_with(port=None),
        _record_with(tags="a,b"),
        _record_with(tags=[1, 2]),
        _record_with(tags=None),
        _record_with(meta=["k", "v"]),
        _record_with(meta={"k": 1}),
        _record_with(name=5),
        _record_with(id=None),
        _record_with(address=["10.0.0.1"]),
        _record_with(health={}),
        _record_with(name=_DROP),
        _record_with(port=_DROP),
        _record_with(container_name=_DROP),
    ],
    ids=["empty", "text", "truncated", "bad-utf8", "null", "number", "string", "empty-list",
         "list", "empty-object", "port-string", "port-float", "port-bool", "port-null",
         "tags-string", "tags-ints", "tags-null", "meta-list", "meta-int-value", "name-int",
         "id-null", "address-list", "health-object", "no-name", "no-port",
         "no-container-name"],
)
def test_parse_entry_rejects_bad_values(raw):
    with pytest.raises(ValueError, match="unreadable entry"):
        parse_entry(raw)


def test_parse_entry_deeply_nested_is_a_value_error():
    with pytest.raises(ValueError, match="unreadable entry"):
        parse_entry(b"[" * 100_000)


def test_rendered_record_matches_dataclass_fields(primary):
    service = make_service()
    record = json.loads(next(iter(primary.render(service, NOW).values())))
    # `check` gates the entry and is not part of it.
    field_names = {f.name for f in dataclasses.fields(Service)} - {"check"}
    assert field_names <= set(record)
    assert "check" not in record


# --- skydns and etcd-naming layouts -------------------------------------------------------


def test_skydns_record_under_reversed_domain():
    renderer = Renderer(KeySpace("/reg"), ("skydns",), "svc.example.org")
    out = renderer.render(make_service(), NOW)
    [(key, value)] = [(k, v) for k, v in out.items() if "/skydns/" in k]
    assert key.startswith("/reg/skydns/org/example/svc/web/")
    leaf = key.rsplit("/", 1)[1]
    assert len(leaf) == 16
    assert all(c in "0123456789abcdef" for c in leaf)
    assert json.loads(value) == {"host": "192.0.2.10", "port": 8080}
    # Two instances of one name get two records.
    other = renderer.render(make_service(id="host2:web:80"), NOW)
    assert {k for k in other if "/skydns/" in k} != {key}


@pytest.mark.parametrize("name", ["Web", "web_1", "web.v2", "-web", "a" * 64])
def test_skydns_skips_names_that_are_not_dns_labels(name):
    out = Renderer(KeySpace("/reg"), ("skydns",)).render(make_service(name=name), NOW)
    assert not [k for k in out if "/skydns/" in k]


@pytest.mark.parametrize(("address", "addr"), [("192.0.2.10", "192.0.2.10:8080"),
                                               ("2001:db8::1", "[2001:db8::1]:8080")])
def test_etcd_naming_endpoint(address, addr):
    out = Renderer(KeySpace("/reg"), ("etcd-naming",)).render(make_service(address=address), NOW)
    assert json.loads(out[f"/reg/naming/web/{addr}"]) == {"Op": 0, "Addr": addr,
                                                         "Metadata": None}


def test_all_layouts_stay_under_the_prefix_and_owned_keys_match():
    renderer = Renderer(KeySpace("/reg"), ("gliderlabs", "skydns", "etcd-naming"))
    service = make_service()
    out = renderer.render(service, NOW)
    assert len(out) == 5  # primary, index and three layouts
    assert all(k.startswith("/reg/") for k in out)
    assert sorted(renderer.owned_keys(service)) == sorted(out)
