"""keys.py: segment validation, prefix normalisation and the key layout (SPEC §4)."""

from __future__ import annotations

import pytest

from registrator.errors import ConfigError, InvalidKeyError
from registrator.keys import KeySpace, check_segment, normalize_prefix, segment_problem

HOSTILE = {
    "empty": "",
    "dot": ".",
    "dotdot": "..",
    "slash": "a/b",
    "leading-slash": "/a",
    "trailing-slash": "a/",
    "inner-dotdot": "a..b",
    "nul": "\x00",
    "nul-inside": "a\x00b",
    "newline": "\n",
    "newline-inside": "a\nb",
    "carriage-return": "a\rb",
    "tab": "a\tb",
    "del": "a\x7fb",
    "line-separator": "a\u2028b",
    "paragraph-separator": "a\u2029b",
    "lone-surrogate": "a\ud800b",
    "leading-space": " lead",
    "trailing-space": "trail ",
    "only-space": "   ",
    "300-bytes": "x" * 300,
    "256-bytes-utf8": "é" * 128,
    "traversal": "../../etc",
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_segments_rejected(value):
    problem = segment_problem(value)
    assert isinstance(problem, str)
    assert problem
    with pytest.raises(InvalidKeyError):
        check_segment(value, "service name")


@pytest.mark.parametrize(
    "value",
    ["web", "web-80", "host1:web:80:udp", "a.b", ".hidden", "x" * 255, "é" * 127, "ünïcødé",
     "a b", "UPPER_case-1.2"],
    ids=["plain", "suffix", "gliderlabs-id", "dot-inside", "leading-dot", "255-bytes",
         "254-bytes-utf8", "unicode", "inner-space", "mixed"],
)
def test_good_segments_accepted(value):
    assert segment_problem(value) is None
    assert check_segment(value, "service name") == value


def test_check_segment_message_names_what_and_is_bounded():
    with pytest.raises(InvalidKeyError) as excinfo:
        check_segment("a/" + "x" * 1000, "service id")
    message = str(excinfo.value)
    assert message.startswith("service id")
    assert len(message) < 200


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("/registrator/", "/registrator"),
        ("registrator", "/registrator"),
        ("/registrator", "/registrator"),
        ("//a//b/", "/a/b"),
        ("/a/b/c", "/a/b/c"),
        ("a/b", "/a/b"),
    ],
)
def test_normalize_prefix(prefix, expected):
    assert normalize_prefix(prefix) == expected
    assert KeySpace(prefix).prefix == expected


@pytest.mark.parametrize(
    "prefix",
    ["", "/", "///", "/a/../b", "/..", "/a/./b", "/a\x00", "/a\nb", "/ a", "/a /b",
     "/" + "x" * 300],
    ids=["empty", "root", "only-slashes", "dotdot", "only-dotdot", "dot", "nul", "newline",
         "leading-space", "trailing-space", "too-long"],
)
def test_bad_prefix_raises_config_error(prefix):
    with pytest.raises(ConfigError, match="--prefix"):
        normalize_prefix(prefix)
    with pytest.raises(ConfigError):
        KeySpace(prefix)


@pytest.fixture
def ks():
    return KeySpace("/registrator/")


def test_service_and_host_keys(ks):
    assert ks.service("web", "host1:web:80") == "/registrator/services/web/host1:web:80"
    assert ks.host("host1") == "/registrator/hosts/host1"
    assert ks.child("web", "id1") == "/registrator/web/id1"


@pytest.mark.parametrize("prefix", ["/registrator", "/a/b", "x"])
@pytest.mark.parametrize(
    ("name", "sid"), [("web", "h:web:80"), ("a.b", "c d"), ("ünï", "x" * 255)]
)
def test_every_built_key_is_under_the_prefix(prefix, name, sid):
    space = KeySpace(prefix)
    root = space.prefix + "/"
    keys = [space.service(name, sid), space.host(name), space.child(name, sid),
            space.child(name)]
    for key in keys:
        assert key.startswith(root)
        assert space.owns(key)
        assert "//" not in key
        assert "/../" not in key


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_segments_never_build_a_key(ks, value):
    with pytest.raises(InvalidKeyError):
        ks.service(value, "id")
    with pytest.raises(InvalidKeyError):
        ks.service("web", value)
    with pytest.raises(InvalidKeyError):
        ks.host(value)
    with pytest.raises(InvalidKeyError):
        ks.child("web", value)


@pytest.mark.parametrize(("name", "sid"), [("web", "host1:web:80"), ("a.b", "ü:x"),
                                           ("n" * 255, "i" * 255)])
def test_parse_service_round_trip(ks, name, sid):
    assert ks.parse_service(ks.service(name, sid)) == (name, sid)


@pytest.mark.parametrize(
    "key",
    [
        "/registrator/services/web",
        "/registrator/services/web/",
        "/registrator/services/web/id/extra",
        "/registrator/services//id",
        "/registrator/services/../id",
        "/registrator/services/web/..",
        "/registrator/services/",
        "/registrator/hosts/host1",
        "/registrator/web/id",
        "/other/services/web/id",
        "/registrator2/services/web/id",
        "registrator/services/web/id",
        "/registrator/services/web/a\nb",
        "",
    ],
)
def test_parse_service_rejects_wrong_shapes(ks, key):
    assert ks.parse_service(key) is None


@pytest.mark.parametrize(
    ("key", "owned"),
    [
        ("/registrator/services/a/b", True),
        ("/registrator/x", True),
        ("/registrator", False),
        ("/registrator2/x", False),
        ("/other/registrator/x", False),
    ],
)
def test_owns(ks, key, owned):
    assert ks.owns(key) is owned
