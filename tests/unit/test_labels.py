"""labels.py: port/bool/tag parsing and sorting labels + env into scopes (SPEC §3)."""

from __future__ import annotations

import pytest

from registrator.labels import (
    LabelValueError,
    parse_bool,
    parse_env,
    parse_labels,
    parse_port,
    port_label,
    split_tags,
)

# --- parse_port ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", (80, "tcp")),
        ("53/udp", (53, "udp")),
        (" 443 ", (443, "tcp")),
        ("80/tcp", (80, "tcp")),
        ("53/UDP", (53, "udp")),
        ("1", (1, "tcp")),
        ("65535", (65535, "tcp")),
    ],
    ids=["plain", "udp", "whitespace", "explicit-tcp", "upper-proto", "lowest", "highest"],
)
def test_parse_port_valid(text, expected):
    assert parse_port(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0", "65536", "80/sctp", "abc", "", "-1", "99999", "80/", "/udp", "80 /udp", "8 0",
     "123456", "80/tcp/udp", "0x50"],
    ids=["zero", "too-high", "sctp", "word", "empty", "negative", "five-digits-high",
         "slash-no-proto", "proto-no-port", "space-before-slash", "inner-space", "six-digits",
         "two-protos", "hex"],
)
def test_parse_port_invalid(text):
    with pytest.raises(LabelValueError):
        parse_port(text)


def test_parse_port_error_message_is_bounded():
    with pytest.raises(LabelValueError) as excinfo:
        parse_port("x" * 10_000)
    assert len(str(excinfo.value)) < 200


@pytest.mark.parametrize(
    ("port", "text"), [((80, "tcp"), "80"), ((53, "udp"), "53/udp")], ids=["tcp", "udp"]
)
def test_port_label_round_trips(port, text):
    assert port_label(port) == text
    assert parse_port(text) == port


# --- parse_bool ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", " True ", "1", "yes", "on"])
def test_parse_bool_true(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["false", "FALSE", " False ", "0", "no", "off"])
def test_parse_bool_false(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "  ", "maybe", "tru", "2", "y", "enable", "true false"])
def test_parse_bool_rejects(text):
    with pytest.raises(LabelValueError):
        parse_bool(text)


# --- split_tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,c", ("a", "b", "c")),
        (" a , b ,c ", ("a", "b", "c")),
        ("a,,b,", ("a", "b")),
        ("", ()),
        (" , ,", ()),
        ("single", ("single",)),
        (r"a\,b,c", ("a,b", "c")),
        (r"x\,y\,z", ("x,y,z",)),
        (r"urlprefix-/a\,/b, other", ("urlprefix-/a,/b", "other")),
    ],
    ids=["plain", "whitespace", "empty-items", "empty", "only-separators", "single",
         "escaped-comma", "two-escapes", "escape-and-space"],
)
def test_split_tags(text, expected):
    assert split_tags(text) == expected


# --- parse_env -------------------------------------------------------------------------------


def test_parse_env():
    env = parse_env(["A=1", "B=x=y", "C=", "NOEQUALS", "SERVICE_NAME=web"])
    assert env == {"A": "1", "B": "x=y", "C": "", "SERVICE_NAME": "web"}


@pytest.mark.parametrize("env", [None, []], ids=["none", "empty"])
def test_parse_env_empty(env):
    assert parse_env(env) == {}


def test_parse_env_last_duplicate_wins():
    assert parse_env(["A=1", "A=2"]) == {"A": "2"}


# --- parse_labels: the two forms and their precedence ------------------------------------------


def test_namespaced_wide_fields_and_meta():
    ls = parse_labels(
        {
            "registrator.name": "web",
            "registrator.id": "web-1",
            "registrator.tags": "a,b",
            "registrator.enable": "true",
            "registrator.ignore": "false",
            "registrator.port": "80,53/udp",
            "registrator.meta.Region": "eu",
            "registrator.meta.a.b": "dotted",
            "unrelated": "x",
        },
        {},
    )
    assert ls.ns_wide.fields == {
        "name": "web", "id": "web-1", "tags": "a,b", "enable": "true", "ignore": "false",
        "port": "80,53/udp",
    }
    assert ls.ns_wide.meta == {"Region": "eu", "a.b": "dotted"}
    assert ls.problems == []


def test_namespaced_per_port_keys():
    ls = parse_labels(
        {
            "registrator.80.name": "http",
            "registrator.80/udp.name": "http-udp",
            "registrator.53/udp.tags": "dns",
            "registrator.443/tcp.id": "tls",
            "registrator.80.meta.k": "v",
            "registrator.80.ignore": "true",
        },
        {},
    )
    assert ls.ns_ports[(80, "tcp")].fields == {"name": "http", "ignore": "true"}
    assert ls.ns_ports[(80, "tcp")].meta == {"k": "v"}
    assert ls.ns_ports[(80, "udp")].fields == {"name": "http-udp"}
    assert ls.ns_ports[(53, "udp")].fields == {"tags": "dns"}
    assert ls.ns_ports[(443, "tcp")].fields == {"id": "tls"}
    assert ls.problems == []


def test_gliderlabs_labels_and_env():
    ls = parse_labels(
        {"SERVICE_NAME": "web", "SERVICE_80_TAGS": "x", "SERVICE_Region": "eu"},
        {"SERVICE_ID": "id1", "SERVICE_443_NAME": "tls", "PATH": "/bin"},
    )
    assert ls.gl_wide.fields == {"name": "web", "id": "id1"}
    assert ls.gl_wide.meta == {"region": "eu"}
    assert ls.gl_ports[80].fields == {"tags": "x"}
    assert ls.gl_ports[443].fields == {"name": "tls"}
    assert ls.problems == []


def test_gliderlabs_label_beats_env():
    ls = parse_labels({"SERVICE_NAME": "from-label"}, {"SERVICE_NAME": "from-env"})
    assert ls.gl_wide.fields["name"] == "from-label"


@pytest.mark.parametrize(
    ("labels", "env", "expected"),
    [
        ({"SERVICE_NAME": ""}, {"SERVICE_NAME": "from-env"}, "from-env"),
        ({}, {"SERVICE_NAME": ""}, None),
        ({"SERVICE_NAME": ""}, {}, None),
    ],
    ids=["empty-label-falls-back-to-env", "empty-env", "empty-label"],
)
def test_empty_value_counts_as_unset(labels, env, expected):
    ls = parse_labels(labels, env)
    assert ls.gl_wide.fields.get("name") == expected


def test_empty_namespaced_value_counts_as_unset():
    ls = parse_labels({"registrator.name": "", "registrator.80.tags": "",
                       "registrator.meta.k": ""}, {})
    assert ls.ns_wide.fields == {}
    assert ls.ns_wide.meta == {}
    assert (80, "tcp") not in ls.ns_ports or not ls.ns_ports[(80, "tcp")].fields
    assert ls.problems == []


def test_gliderlabs_reserved_and_check_keys_are_not_meta():
    ls = parse_labels(
        {
            "SERVICE_NAME": "n", "SERVICE_ID": "i", "SERVICE_TAGS": "t", "SERVICE_IGNORE": "1",
            "SERVICE_CHECK_HTTP": "/health", "SERVICE_80_CHECK_INTERVAL": "5s",
            "SERVICE_80_REGION": "eu", "SERVICE_Owner": "team",
        },
        {},
    )
    assert ls.gl_wide.meta == {"owner": "team"}
    assert set(ls.gl_wide.fields) == {"name", "id", "tags", "ignore"}
    assert ls.gl_ports[80].meta == {"region": "eu"}
    assert ls.gl_ports[80].fields == {}


@pytest.mark.parametrize(
    "key",
    ["registrator.foo", "registrator.name.extra", "registrator.meta", "registrator.80.port",
     "registrator.80.enable", "registrator.80.bogus", "registrator.80"],
)
def test_unknown_namespaced_label_is_a_problem(key):
    ls = parse_labels({key: "x"}, {})
    assert [k for k, _ in ls.problems] == [key]


@pytest.mark.parametrize(
    "key",
    ["registrator.0.name", "registrator.65536.name", "registrator.80/sctp.name",
     "registrator.99999.tags"],
    ids=["zero", "too-high", "sctp", "five-digits"],
)
def test_invalid_per_port_key_is_a_problem(key):
    ls = parse_labels({key: "x"}, {})
    assert [k for k, _ in ls.problems] == [key]
    assert ls.ns_ports == {}


@pytest.mark.parametrize("key", ["SERVICE_0_NAME", "SERVICE_70000_NAME"])
def test_invalid_gliderlabs_port_is_a_problem(key):
    ls = parse_labels({key: "x"}, {})
    assert [k for k, _ in ls.problems] == [key]
    assert ls.gl_ports == {}


@pytest.mark.parametrize(
    ("key", "scope", "name"),
    [("registrator.check.http", None, "http"), ("registrator.check.tcp", None, "tcp"),
     ("registrator.check.interval", None, "interval"),
     ("registrator.check.http.status", None, "http.status"),
     ("registrator.80.check.http", (80, "tcp"), "http"),
     ("registrator.53/udp.check.tcp", (53, "udp"), "tcp")],
)
def test_check_labels_are_collected_not_meta(key, scope, name):
    ls = parse_labels({key: "/health"}, {})
    assert ls.problems == []
    target = ls.ns_wide if scope is None else ls.ns_ports[scope]
    assert target.checks == {name: "/health"}
    assert not target.fields
    assert not target.meta


def test_gliderlabs_check_keys_are_collected_and_consul_only_ones_dropped():
    ls = parse_labels({"SERVICE_CHECK_HTTP": "/h", "SERVICE_CHECK_SCRIPT": "x",
                       "SERVICE_80_CHECK_INTERVAL": "5s"}, {})
    assert ls.gl_wide.checks == {"http": "/h"}
    assert ls.gl_ports[80].checks == {"interval": "5s"}
    assert ls.lookup_check((80, "tcp"), "interval") == ("5s", "SERVICE_80_CHECK_INTERVAL")
    assert ls.lookup_check((80, "tcp"), "http") == ("/h", "SERVICE_CHECK_HTTP")


def test_unknown_check_field_is_a_problem():
    ls = parse_labels({"registrator.check.http.interval": "5s"}, {})
    assert [k for k, _ in ls.problems] == ["registrator.check.http.interval"]


@pytest.mark.parametrize("labels", [None, {}], ids=["none", "empty"])
def test_no_labels(labels):
    ls = parse_labels(labels, {})
    assert ls.problems == []
    assert ls.ns_wide.fields == {}


@pytest.mark.parametrize(
    ("labels", "env", "expected_value", "expected_key"),
    [
        ({"registrator.80.name": "a", "registrator.name": "b", "SERVICE_80_NAME": "c",
          "SERVICE_NAME": "d"}, {}, "a", "registrator.80.name"),
        ({"registrator.name": "b", "SERVICE_80_NAME": "c", "SERVICE_NAME": "d"}, {}, "b",
         "registrator.name"),
        ({"SERVICE_80_NAME": "c", "SERVICE_NAME": "d"}, {}, "c", "SERVICE_80_NAME"),
        ({"SERVICE_NAME": "d"}, {}, "d", "SERVICE_NAME"),
        ({}, {"SERVICE_80_NAME": "c", "SERVICE_NAME": "d"}, "c", "SERVICE_80_NAME"),
        ({"SERVICE_NAME": "label"}, {"SERVICE_80_NAME": "env"}, "env", "SERVICE_80_NAME"),
        ({"registrator.53/udp.name": "other"}, {"SERVICE_NAME": "d"}, "d", "SERVICE_NAME"),
    ],
    ids=["ns-port", "ns-wide", "gl-port", "gl-wide", "env-port", "per-port-env-beats-wide-label",
         "other-proto-does-not-apply"],
)
def test_lookup_precedence(labels, env, expected_value, expected_key):
    ls = parse_labels(labels, env)
    found = ls.lookup((80, "tcp"), "name")
    assert found is not None
    assert found[:2] == (expected_value, expected_key)


def test_lookup_missing():
    assert parse_labels({"registrator.tags": "x"}, {}).lookup((80, "tcp"), "name") is None


def test_meta_merge_precedence():
    ls = parse_labels(
        {"registrator.80.meta.k": "ns-port", "registrator.meta.k": "ns-wide",
         "registrator.meta.j": "ns-wide", "SERVICE_80_K": "gl-port", "SERVICE_80_J": "gl-port",
         "SERVICE_I": "gl-wide-label"},
        {"SERVICE_I": "gl-wide-env", "SERVICE_H": "env"},
    )
    assert ls.meta((80, "tcp")) == {"k": "ns-port", "j": "ns-wide", "i": "gl-wide-label",
                                    "h": "env"}
    assert ls.meta((443, "tcp")) == {"k": "ns-wide", "j": "ns-wide", "i": "gl-wide-label",
                                     "h": "env"}


def test_named_ports():
    ls = parse_labels({"registrator.80.name": "a", "registrator.443.tags": "t",
                       "SERVICE_53_NAME": "dns"}, {})
    assert ls.named_ports() == {(80, "tcp"), (53, "tcp"), (53, "udp")}


def test_non_gliderlabs_prefixes_are_ignored():
    ls = parse_labels({"service_name": "lower", "SERVICENAME": "x", "registratorname": "y",
                       "com.docker.compose.service": "web"}, {"SERVICE": "z"})
    assert ls.gl_wide.fields == {}
    assert ls.gl_wide.meta == {}
    assert ls.ns_wide.fields == {}
    assert ls.problems == []


def test_gliderlabs_key_with_unicode_digit_port_does_not_raise():
    ls = parse_labels({"SERVICE_²_NAME": "x", "SERVICE_NAME": "web"}, {})
    assert ls.gl_wide.fields["name"] == "web"


# --- issue 13: drain, network, address ---------------------------------------------------------
@pytest.mark.parametrize(("labels", "env", "scope", "field", "value"), [
    ({"registrator.drain": "false"}, {}, "ns_wide", "drain", "false"),
    ({"registrator.network": "front"}, {}, "ns_wide", "network", "front"),
    ({"registrator.address": "10.0.0.5"}, {}, "ns_wide", "address", "10.0.0.5"),
    ({"SERVICE_DRAIN": "no"}, {}, "gl_wide", "drain", "no"),
    ({}, {"SERVICE_DRAIN": "no"}, "gl_wide", "drain", "no"),
])
def test_new_container_wide_fields(labels, env, scope, field, value):
    result = parse_labels(labels, env)
    assert getattr(result, scope).fields == {field: value}
    assert result.problems == []
    assert getattr(result, scope).meta == {}


def test_address_may_be_set_per_port_network_and_drain_may_not():
    result = parse_labels({"registrator.80.address": "fd00::5", "registrator.80.network": "x",
                           "registrator.80.drain": "false"}, {})
    assert result.ns_ports[(80, "tcp")].fields == {"address": "fd00::5"}
    assert sorted(k for k, _ in result.problems) == ["registrator.80.drain",
                                                      "registrator.80.network"]


def test_service_address_stays_gliderlabs_meta():
    result = parse_labels({"SERVICE_ADDRESS": "x"}, {})
    assert (result.gl_wide.fields, result.gl_wide.meta) == ({}, {"address": "x"})
