"""Resolution of configuration values for one host (SPEC §9): the host's override, else the
app's default, else the caller's own default. Each value carries where it came from."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from registrator.configvalues.crypt import foreign_form, is_encrypted
from registrator.configvalues.names import ConfigLayout, check_app, check_host, check_key
from registrator.stores.base import KeyValue, Store


class Source(StrEnum):
    HOST = "host"
    DEFAULT = "default"
    CALLER = "caller"  # the caller's own default: nothing in the store


@dataclass(frozen=True, slots=True)
class Resolved:
    key: str
    value: bytes
    source: Source
    store_key: str | None  # None when the value is the caller's default

    @property
    def encrypted(self) -> bool:
        return is_encrypted(self.value)

    @property
    def foreign(self) -> str | None:
        """The kind of OpenPGP message the value is when crypt does not produce that kind
        (armored, symmetric, signed...): refused, never shown (issue 21)."""
        return None if self.source is Source.CALLER or self.encrypted else foreign_form(
            self.value)


def this_host() -> str:
    """The host name `run` writes records under when neither --hostname nor
    REGISTRATOR_HOSTNAME is given (those come through each command's own flag)."""
    return socket.gethostname().strip()


def resolve_one(key: str, host_value: KeyValue | None, default_value: KeyValue | None,
                caller_default: bytes | None = None) -> Resolved | None:
    for found, source in ((host_value, Source.HOST), (default_value, Source.DEFAULT)):
        if found is not None:
            return Resolved(key, found.value, source, found.key)
    if caller_default is not None:
        return Resolved(key, caller_default, Source.CALLER, None)
    return None


def resolve_all(layout: ConfigLayout, app: str, host: str,
                entries: Iterable[KeyValue]) -> dict[str, Resolved]:
    """Every key the app has, resolved for `host`, from a read of the app's whole root.
    Other hosts' overrides and keys of unknown shape are ignored."""
    defaults: dict[str, KeyValue] = {}
    overrides: dict[str, KeyValue] = {}
    for entry in entries:
        parsed = layout.parse(app, entry.key)
        if parsed is None:
            continue
        owner, key = parsed
        if owner is None:
            defaults[key] = entry
        elif owner == host:
            overrides[key] = entry
    out: dict[str, Resolved] = {}
    for key in sorted(defaults.keys() | overrides.keys()):
        resolved = resolve_one(key, overrides.get(key), defaults.get(key))
        if resolved is not None:
            out[key] = resolved
    return out


class ConfigReader:
    """Reads resolved values from a store; what `config get/ls/exec` and `render`'s
    `config(app, key, default)` share."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.layout = ConfigLayout.under(prefix)

    def value(self, app: str, key: str, host: str,
              caller_default: bytes | None = None) -> Resolved | None:
        check_app(app)
        check_key(key)
        check_host(host)
        override = self.store.get(self.layout.host_key(app, host, key))
        default = self.store.get(self.layout.default_key(app, key))
        return resolve_one(key, override, default, caller_default)

    def app(self, app: str, host: str) -> dict[str, Resolved]:
        check_host(host)
        entries = self.store.get_prefix(self.layout.app_root(app))
        return resolve_all(self.layout, app, host, entries)
