"""Configuration values (SPEC §9): name validation, key layout, resolution order with the
source of each value, and environment-variable naming."""

from __future__ import annotations

import pytest

from registrator.configvalues.names import (
    ConfigLayout,
    check_app,
    check_env_prefix,
    check_host,
    check_key,
    env_name,
)
from registrator.configvalues.resolve import ConfigReader, Source, resolve_all, resolve_one
from registrator.errors import ConfigError
from registrator.stores.base import KeyValue

LAYOUT = ConfigLayout.under("/reg/")


class Store:
    """Reads only: what ConfigReader uses."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data

    def get(self, key: str) -> KeyValue | None:
        return KeyValue(key, self.data[key], 0) if key in self.data else None

    def get_prefix(self, prefix: str) -> list[KeyValue]:
        return [KeyValue(k, v, 0) for k, v in sorted(self.data.items()) if k.startswith(prefix)]


BAD_NAMES = {
    "empty": "",
    "dotdot": "..",
    "dot": ".",
    "inner-dotdot": "a..b",
    "slash": "a/b",
    "space": "a b",
    "nul": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "del": "a\x7fb",
    "unicode-letter": "caf\u00e9",
    "cyrillic-a": "\u0430pp",
    "colon": "a:b",
    "star": "a*",
    "too-long": "a" * 256,
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_bad_app_names_are_refused(name):
    with pytest.raises(ConfigError) as err:
        check_app(name)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("app name ")


@pytest.mark.parametrize("name", ["shop", "a", "A-b_c.d", "v1.2", "a" * 255, "0"])
def test_good_app_names(name):
    assert check_app(name) == name


@pytest.mark.parametrize("key", ["db.url", "tls/ca-file", "a/b/c", "X_Y", "a" * 255 + "/b"])
def test_good_keys_may_be_paths(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "/a", "a/", "a//b", "a/../b", "../a", "a/./b", "a/b c",
                                 "a/\x00", "a/" + "b" * 256, "db.url\n"])
def test_bad_keys_are_refused(key):
    with pytest.raises(ConfigError) as err:
        check_key(key)
    assert "\n" not in str(err.value)


def test_messages_cut_long_names_and_escape_control_characters():
    with pytest.raises(ConfigError) as err:
        check_app("x" * 1000)
    assert len(str(err.value)) < 160
    with pytest.raises(ConfigError) as err:
        check_key("a/b\nc")
    assert "\\n" in str(err.value)


@pytest.mark.parametrize("host", ["", "a/b", "..", "a\nb"])
def test_bad_hosts_are_refused(host):
    with pytest.raises(ConfigError, match=r"^--host "):
        check_host(host)


def test_layout():
    assert LAYOUT.prefix == "/reg"
    assert LAYOUT.app_root("shop") == "/reg/config/shop/"
    assert LAYOUT.default_key("shop", "db.url") == "/reg/config/shop/defaults/db.url"
    assert LAYOUT.host_key("shop", "host7", "tls/ca") == "/reg/config/shop/hosts/host7/tls/ca"
    assert LAYOUT.key_for("shop", "k", None) == LAYOUT.default_key("shop", "k")
    assert LAYOUT.key_for("shop", "k", "h") == LAYOUT.host_key("shop", "h", "k")


def test_layout_parse():
    assert LAYOUT.parse("shop", "/reg/config/shop/defaults/db.url") == (None, "db.url")
    assert LAYOUT.parse("shop", "/reg/config/shop/hosts/h7/a/b") == ("h7", "a/b")
    for junk in ("/reg/config/shop/other/x", "/reg/config/shop/defaults/a//b",
                 "/reg/config/shopx/defaults/a", "/reg/config/shop/hosts/h7",
                 "/reg/config/shop/defaults/", "/reg/config/shop/defaults/a b"):
        assert LAYOUT.parse("shop", junk) is None, junk


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key, value.encode(), 0)


def test_resolution_order_host_then_default_then_caller():
    host, default = kv("h", "from-host"), kv("d", "from-default")
    assert resolve_one("k", host, default, b"caller").source is Source.HOST
    assert resolve_one("k", host, default).value == b"from-host"
    both = resolve_one("k", None, default, b"caller")
    assert (both.value, both.source, both.store_key) == (b"from-default", Source.DEFAULT, "d")
    mine = resolve_one("k", None, None, b"caller")
    assert (mine.value, mine.source, mine.store_key) == (b"caller", Source.CALLER, None)
    assert resolve_one("k", None, None) is None


def test_an_empty_stored_value_still_wins_over_the_callers_default():
    resolved = resolve_one("k", None, kv("d", ""), b"caller")
    assert (resolved.value, resolved.source) == (b"", Source.DEFAULT)


def test_resolve_all_takes_this_hosts_overrides_only():
    root = "/reg/config/shop/"
    entries = [
        kv(root + "defaults/db.url", "pg://db"),
        kv(root + "defaults/pool", "5"),
        kv(root + "hosts/host7/db.url", "pg://replica"),
        kv(root + "hosts/host8/pool", "50"),
        kv(root + "hosts/host7/only.here", "x"),
        kv(root + "junk/key", "ignored"),
    ]
    on7 = resolve_all(LAYOUT, "shop", "host7", entries)
    assert {k: (r.value, r.source) for k, r in on7.items()} == {
        "db.url": (b"pg://replica", Source.HOST),
        "only.here": (b"x", Source.HOST),
        "pool": (b"5", Source.DEFAULT),
    }
    assert list(on7) == sorted(on7)
    on8 = resolve_all(LAYOUT, "shop", "host8", entries)
    assert {k: r.value for k, r in on8.items()} == {"db.url": b"pg://db", "pool": b"50"}


def test_reader_reads_override_then_default():
    store = Store({"/reg/config/shop/defaults/db.url": b"pg://db",
                   "/reg/config/shop/hosts/host7/db.url": b"pg://replica",
                   "/reg/config/other/defaults/db.url": b"elsewhere"})
    reader = ConfigReader(store, "/reg")
    assert reader.value("shop", "db.url", "host7").value == b"pg://replica"
    assert reader.value("shop", "db.url", "host1").value == b"pg://db"
    assert reader.value("shop", "nope", "host1", b"mine").source is Source.CALLER
    assert set(reader.app("shop", "host1")) == {"db.url"}
    with pytest.raises(ConfigError):
        reader.value("shop", "../other/defaults/db.url", "host1")


@pytest.mark.parametrize(("key", "prefix", "expected"), [
    ("db.url", "", "DB_URL"),
    ("tls/ca-file", "", "TLS_CA_FILE"),
    ("Mixed.Case-x/y", "", "MIXED_CASE_X_Y"),
    ("db.url", "SHOP_", "SHOP_DB_URL"),
    ("port", "app", "appPORT"),
])
def test_env_names(key, prefix, expected):
    assert env_name(key, prefix) == expected


@pytest.mark.parametrize("prefix", ["1X", "A-B", "A.B", "A B", "\u00e9"])
def test_bad_env_prefixes_are_refused(prefix):
    with pytest.raises(ConfigError, match=r"^--prefix-env "):
        check_env_prefix(prefix)


def test_good_env_prefixes():
    assert check_env_prefix("") == ""
    assert check_env_prefix("SHOP_") == "SHOP_"
