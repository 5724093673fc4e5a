"""Resolved values as the commands hand them out: decrypted where asked, shown without ever
showing an encrypted one, turned into environment variables for `config exec`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import structlog

from registrator.configvalues.crypt import CryptError, decrypt
from registrator.configvalues.environment import skip_reason
from registrator.configvalues.names import env_name
from registrator.configvalues.resolve import ConfigReader, Resolved
from registrator.configvalues.runner import WatchPolicy
from registrator.errors import ConfigError, RegistratorError
from registrator.settings import parse_duration
from registrator.stores.base import Store

log = structlog.get_logger("registrator.config.exec")


class NotSetError(RegistratorError):
    """The store has no value where one was asked for."""


class UnusableValueError(RegistratorError):
    """A stored value cannot be used as asked (e.g. as an environment variable)."""


def plaintext(resolved: Resolved, secret_keyring: str | None) -> bytes:
    """The value itself; an encrypted one only with a secret keyring, never its ciphertext
    in place of the value."""
    name = resolved.store_key or resolved.key
    if not resolved.encrypted:
        form = resolved.foreign
        if form is not None:
            raise CryptError(f"{name}: the stored value is {form}, a form crypt does not "
                             "produce; store it with `config set --encrypt`")
        return resolved.value
    if not secret_keyring:
        raise CryptError(f"{name} is encrypted: give --secret-keyring (or "
                         "REGISTRATOR_SECRET_KEYRING) to read it")
    return decrypt(resolved.value, secret_keyring, name)


def shown(resolved: Resolved, width: int) -> str:
    """One table cell: encrypted values are marked, others escaped and cut to `width`."""
    if resolved.encrypted:
        return "(encrypted)"
    if resolved.foreign is not None:
        return "(OpenPGP, not crypt's format)"
    text = repr(resolved.value.decode("utf-8", "replace"))[1:-1]
    return text if len(text) <= width else text[:width - 3] + "..."


def describe(resolved: Resolved, host: str) -> dict[str, Any]:
    """`config ls --json`: the value as text, or null when it is encrypted (or not text)."""
    value: str | None = None
    encrypted = resolved.encrypted or resolved.foreign is not None
    if not encrypted:
        try:
            value = resolved.value.decode("utf-8")
        except UnicodeDecodeError:
            value = None
    return {"key": resolved.key, "source": str(resolved.source),
            "host": host if resolved.source == "host" else None,
            "store_key": resolved.store_key, "encrypted": encrypted, "value": value}


class EnvLoader:
    """Reads the app's values for one host as environment variables, decrypting with the
    secret keyring. Called again at every read of `config exec --watch`."""

    def __init__(  # noqa: PLR0913 - what one `config exec` names
            self, store: Store, prefix: str, app: str, host: str, secret_keyring: str | None,
            env_prefix: str, allow_env: Collection[str] = ()) -> None:
        self.reader = ConfigReader(store, prefix)
        self.app, self.host = app, host
        self.secret_keyring, self.env_prefix = secret_keyring, env_prefix
        self.allow_env = frozenset(allow_env)
        self._warned: set[str] = set()  # one warning per skipped name, not one per read
        # Ciphertext -> plaintext of the last read: `--watch` reads every second, and gpg
        # (with an agent to start and stop) is only needed for values that changed.
        self._decrypted: dict[bytes, bytes] = {}

    def __call__(self) -> dict[str, str]:
        env: dict[str, str] = {}
        owners: dict[str, str] = {}
        decrypted: dict[bytes, bytes] = {}
        for key, resolved in self.reader.app(self.app, self.host).items():
            name = env_name(key, self.env_prefix)
            if name in env:
                raise UnusableValueError(f"keys {owners[name]!r} and {key!r} of app "
                                         f"{self.app!r} both become ${name}")
            reason = skip_reason(name, self.allow_env)
            if reason is not None:
                # Skipped before decryption: a value that is not exported is never read.
                if name not in self._warned:
                    # The line names the variable itself: it is what the operator looks for.
                    log.warning(f"not exported: ${name} {reason}",  # noqa: G004
                                key=resolved.store_key)
                    self._warned.add(name)
                continue
            data = self._decrypted.get(resolved.value) if resolved.encrypted else None
            if data is None:
                data = plaintext(resolved, self.secret_keyring)
            if resolved.encrypted:
                decrypted[resolved.value] = data
            if b"\x00" in data:
                raise UnusableValueError(f"{resolved.store_key}: a NUL byte cannot be in an "
                                         "environment variable")
            env[name] = data.decode("utf-8", "surrogateescape")
            owners[name] = key
        self._decrypted = decrypted  # only what is still stored
        return env


def watch_policy(interval: str, wait: str, kill_timeout: str, sig: int | None) -> WatchPolicy:
    every = parse_duration(interval, "--interval")
    if every <= 0:
        raise ConfigError(f"--interval {interval!r} must be more than 0")
    quiet_text, _, longest_text = wait.partition(":")
    quiet = parse_duration(quiet_text, "--wait")
    longest = parse_duration(longest_text, "--wait") if longest_text else max(quiet, 5.0)
    if longest < quiet:
        raise ConfigError(f"--wait {wait!r}: MAX must not be less than MIN")
    grace = parse_duration(kill_timeout, "--kill-timeout")
    return WatchPolicy(interval=every, quiet=quiet, longest=longest, signal=sig, grace=grace)


class TemplateConfig:
    """`config(app, key, default=None)` for `render` templates (SPEC §8, §9), resolved for
    one host. `decrypted` turns true once a template read an encrypted value: the rendered
    file then holds a secret and is written 0600 unless told otherwise (issue 14)."""

    def __init__(self, store: Store, prefix: str, host: str,
                 secret_keyring: str | None = None) -> None:
        self.reader = ConfigReader(store, prefix)
        self.host, self.secret_keyring = host, secret_keyring
        self.decrypted = False

    def __call__(self, app: str, key: str, default: str | None = None) -> str | None:
        resolved = self.reader.value(app, key, self.host)
        if resolved is None:
            return default
        if resolved.encrypted:
            self.decrypted = True
        data = plaintext(resolved, self.secret_keyring)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Replacing bytes by U+FFFD would render a value nobody stored (issue 21).
            raise UnusableValueError(f"{resolved.store_key or key}: the value is not UTF-8 "
                                     f"text (byte {exc.start}); config() returns text"
                                     ) from None
