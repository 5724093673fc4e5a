"""Names and key layout of configuration values (SPEC §9). Every config key is built here,
from validated names only, so nothing lands outside `<prefix>/config/<app>/`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registrator.errors import ConfigError
from registrator.keys import MAX_SEGMENT_BYTES, normalize_prefix, segment_problem

# ASCII only: str.isalnum() would let in look-alike letters from other scripts.
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_TRANSLATION = str.maketrans({"/": "_", ".": "_", "-": "_"})


def _shown(value: str) -> str:
    """A name as error messages show it: cut short, control characters escaped by repr."""
    return repr(value[:64] + ("..." if len(value) > 64 else ""))


def name_problem(segment: str) -> str | None:
    """Why `segment` cannot be an app name or one segment of a key, or None when it can."""
    if not segment:
        return "is empty"
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return f"is longer than {MAX_SEGMENT_BYTES} bytes"
    if ".." in segment or segment == ".":
        return "contains '..'" if ".." in segment else "is '.'"
    if not _SEGMENT.fullmatch(segment):
        return "may only hold letters, digits, '_', '.' and '-'"
    return None


def check_app(app: str) -> str:
    problem = name_problem(app)
    if problem is not None:
        raise ConfigError(f"app name {_shown(app)} {problem}")
    return app


def check_key(key: str) -> str:
    """A key may be a path: `/`-separated segments, none of them empty."""
    for segment in key.split("/"):
        problem = name_problem(segment)
        if problem is not None:
            where = "" if segment == key else f" (segment {_shown(segment)})"
            raise ConfigError(f"key {_shown(key)}{where} {problem}")
    return key


def check_host(host: str) -> str:
    """Host names follow the daemon's rule for --hostname, so `config --host` names the same
    hosts `run` writes records for."""
    problem = segment_problem(host)
    if problem is not None:
        raise ConfigError(f"--host {_shown(host)} {problem}")
    return host


def env_name(key: str, prefix: str = "") -> str:
    """`db.url` -> `DB_URL`; `tls/ca-file` with prefix `SHOP_` -> `SHOP_TLS_CA_FILE`."""
    return prefix + key.upper().translate(_ENV_TRANSLATION)


def check_env_prefix(prefix: str) -> str:
    if prefix and not _ENV_NAME.fullmatch(prefix):
        raise ConfigError(f"--prefix-env {_shown(prefix)} must be letters, digits and '_', "
                          "not starting with a digit")
    return prefix


@dataclass(frozen=True, slots=True)
class ConfigLayout:
    """`<prefix>/config/<app>/defaults/<key>` and `<prefix>/config/<app>/hosts/<host>/<key>`."""

    prefix: str

    @classmethod
    def under(cls, prefix: str) -> ConfigLayout:
        return cls(normalize_prefix(prefix))

    def app_root(self, app: str) -> str:
        return f"{self.prefix}/config/{check_app(app)}/"

    def default_key(self, app: str, key: str) -> str:
        return f"{self.app_root(app)}defaults/{check_key(key)}"

    def host_key(self, app: str, host: str, key: str) -> str:
        return f"{self.app_root(app)}hosts/{check_host(host)}/{check_key(key)}"

    def key_for(self, app: str, key: str, host: str | None) -> str:
        """The default's key, or `host`'s override key when a host is named."""
        return self.default_key(app, key) if host is None else self.host_key(app, host, key)

    def parse(self, app: str, store_key: str) -> tuple[str | None, str] | None:
        """(host or None for a default, key) of a key under the app's root; None for a key
        of another shape or with an invalid name (someone else wrote it: it is ignored)."""
        root = self.app_root(app)
        if not store_key.startswith(root):
            return None
        rest = store_key[len(root):]
        host: str | None = None
        if rest.startswith("defaults/"):
            key = rest[len("defaults/"):]
        elif rest.startswith("hosts/"):
            host, _, key = rest[len("hosts/"):].partition("/")
            if segment_problem(host) is not None:
                return None
        else:
            return None
        if any(name_problem(s) for s in key.split("/")):
            return None
        return host, key
