"""Label parsing (SPEC §3), pure: label/env maps in, a LabelSet out, problems as warnings.

Two forms are read: namespaced `registrator.*` labels, and gliderlabs' `SERVICE_*` labels and
environment variables. Lookups follow one precedence everywhere:
namespaced per-port > namespaced container-wide > SERVICE_<port>_* > SERVICE_*,
and for the SERVICE_* form a label beats an environment variable of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

NS = "registrator."
GL = "SERVICE_"
# Keys of the namespaced form that apply to the whole container.
_WIDE_FIELDS = frozenset({"enable", "name", "id", "tags", "ignore", "port", "drain", "network",
                          "address"})
_PORT_FIELDS = frozenset({"name", "id", "tags", "ignore", "address"})
# gliderlabs keys with a meaning of their own; everything else becomes meta.
_GL_RESERVED = frozenset({"name", "id", "tags", "ignore", "drain"})
CHECK_FIELDS = frozenset({"http", "http.status", "tcp", "interval", "timeout", "rise", "fall"})
_GL_CHECKS = frozenset({"http", "tcp", "interval", "timeout"})
_PORT_RE = re.compile(r"^([0-9]{1,5})(?:/([a-z]+))?$")  # ASCII digits only: int() agrees
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

PortKey = tuple[int, str]  # (container port, "tcp" | "udp")


class LabelValueError(ValueError):
    """A label value that cannot be used; the message says why."""


def parse_port(text: str) -> PortKey:
    """'80' -> (80, 'tcp'); '53/udp' -> (53, 'udp'). Raises LabelValueError otherwise."""
    match = _PORT_RE.match(text.strip().lower())
    if not match:
        raise LabelValueError(f"{text[:40]!r} is not a port (want 80 or 53/udp)")
    number, proto = int(match.group(1)), match.group(2) or "tcp"
    if not 1 <= number <= 65535:
        raise LabelValueError(f"port {number} is outside 1-65535")
    if proto not in ("tcp", "udp"):
        raise LabelValueError(f"protocol {proto!r} is not tcp or udp")
    return number, proto


def port_label(port: PortKey) -> str:
    return str(port[0]) if port[1] == "tcp" else f"{port[0]}/{port[1]}"


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise LabelValueError(f"{text[:40]!r} is not a boolean (want true or false)")


def split_tags(text: str) -> tuple[str, ...]:
    r"""Comma list; '\,' keeps a comma inside a tag (gliderlabs' escape)."""
    parts = re.split(r"(?<!\\),", text)
    tags = (p.replace("\\,", ",").strip() for p in parts)
    return tuple(t for t in tags if t)


@dataclass(slots=True)
class Scope:
    """The fields set at one level (container-wide, or one port) in one form."""

    fields: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)  # "http", "tcp", "interval", ...


@dataclass(slots=True)
class LabelSet:
    ns_wide: Scope = field(default_factory=Scope)
    ns_ports: dict[PortKey, Scope] = field(default_factory=dict)
    gl_wide: Scope = field(default_factory=Scope)
    gl_ports: dict[int, Scope] = field(default_factory=dict)  # gliderlabs keys carry no proto
    # (label key, problem) for labels that could not be read at all
    problems: list[tuple[str, str]] = field(default_factory=list)

    def scopes(self, port: PortKey) -> list[tuple[str, Scope, bool]]:
        """(label prefix, scope, is per-port) from the strongest to the weakest for one port."""
        out: list[tuple[str, Scope, bool]] = []
        if port in self.ns_ports:
            out.append((f"{NS}{port_label(port)}.", self.ns_ports[port], True))
        out.append((NS, self.ns_wide, False))
        if port[0] in self.gl_ports:
            out.append((f"{GL}{port[0]}_", self.gl_ports[port[0]], True))
        out.append((GL, self.gl_wide, False))
        return out

    def lookup(self, port: PortKey, name: str) -> tuple[str, str, bool] | None:
        """(value, label key it came from, is per-port) of the strongest setting of `name`."""
        for prefix, scope, per_port in self.scopes(port):
            if name in scope.fields:
                key = prefix + (name.upper() if prefix.startswith(GL) else name)
                return scope.fields[name], key, per_port
        return None

    def lookup_check(self, port: PortKey, name: str) -> tuple[str, str] | None:
        """(value, label key) of the strongest setting of one health-check field."""
        for prefix, scope, _ in self.scopes(port):
            if name in scope.checks:
                if prefix.startswith(GL):
                    return scope.checks[name], f"{prefix}CHECK_{name.upper()}"
                return scope.checks[name], f"{prefix}check.{name}"
        return None

    def meta(self, port: PortKey) -> dict[str, str]:
        merged: dict[str, str] = {}
        for _, scope, _ in reversed(self.scopes(port)):
            merged.update(scope.meta)
        return merged

    def named_ports(self, *, gliderlabs_protocols: tuple[str, ...] = ("tcp", "udp")
                    ) -> set[PortKey]:
        """Ports that carry a name of their own. A gliderlabs key names a port number only:
        it matches both protocols of a published port, but when it is what *chooses* a
        port (host networking) it means the tcp one."""
        ports = {p for p, s in self.ns_ports.items() if "name" in s.fields}
        for number, scope in self.gl_ports.items():
            if "name" in scope.fields:
                ports |= {(number, proto) for proto in gliderlabs_protocols}
        return ports


def parse_env(env: Iterable[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def parse_labels(labels: Mapping[str, str] | None, env: Mapping[str, str]) -> LabelSet:
    """Sort every relevant label and env var into its scope. Empty values count as unset."""
    result = LabelSet()
    gliderlabs = {k: v for k, v in env.items() if k.startswith(GL) and v != ""}
    for key, value in (labels or {}).items():
        if value == "":
            continue
        if key.startswith(NS):
            _add_namespaced(result, key, value)
        elif key.startswith(GL):
            gliderlabs[key] = value  # a label beats the env var of the same name
    for key, value in gliderlabs.items():
        _add_gliderlabs(result, key, value)
    return result


def _add_namespaced(result: LabelSet, key: str, value: str) -> None:
    rest = key[len(NS):]
    head, _, tail = rest.partition(".")
    if _PORT_RE.match(head):
        try:
            port = parse_port(head)
        except LabelValueError as exc:
            result.problems.append((key, str(exc)))
            return
        scope = result.ns_ports.setdefault(port, Scope())
        head, _, tail = tail.partition(".")
        allowed = _PORT_FIELDS
    else:
        scope = result.ns_wide
        allowed = _WIDE_FIELDS
    if head == "meta" and tail:
        scope.meta[tail] = value
    elif head == "check" and tail in CHECK_FIELDS:
        scope.checks[tail] = value
    elif head in allowed and not tail:
        scope.fields[head] = value
    else:
        result.problems.append((key, "is not a registrator label (see the label table)"))


def _add_gliderlabs(result: LabelSet, key: str, value: str) -> None:
    lowered = key[len(GL):].lower()
    head, sep, tail = lowered.partition("_")
    if head.isascii() and head.isdigit() and sep and tail:
        number = int(head)
        if not 1 <= number <= 65535:
            result.problems.append((key, f"port {number} is outside 1-65535"))
            return
        scope = result.gl_ports.setdefault(number, Scope())
        lowered = tail
    else:
        scope = result.gl_wide
    if not lowered:
        return
    if lowered in _GL_RESERVED:
        scope.fields[lowered] = value
    elif lowered.startswith("check_"):
        # gliderlabs' Consul-only checks (script, ttl, ...) have no meaning here.
        if lowered[len("check_"):] in _GL_CHECKS:
            scope.checks[lowered[len("check_"):]] = value
    else:
        scope.meta[lowered] = value
