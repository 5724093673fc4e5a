"""Key layout (SPEC §4). Every key is built here, only from validated segments, so nothing
can land outside the configured prefix whatever a label or the store contains."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from registrator.errors import ConfigError, InvalidKeyError

MAX_SEGMENT_BYTES = 255


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in value)


# (test, problem): the first test a value fails names its problem.
_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda v: not v, "is empty"),
    (lambda v: len(v.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES,
     f"is longer than {MAX_SEGMENT_BYTES} bytes"),
    (lambda v: "/" in v, "contains '/'"),
    (lambda v: ".." in v, "contains '..'"),
    (lambda v: v == ".", "is '.'"),
    (_has_control, "contains a control character"),
    (lambda v: v != v.strip(), "has leading or trailing white space"),
)


def segment_problem(value: str) -> str | None:
    """Why `value` cannot be one path segment of a key, or None when it can."""
    return next((problem for test, problem in _RULES if test(value)), None)


def check_segment(value: str, what: str) -> str:
    problem = segment_problem(value)
    if problem is not None:
        raise InvalidKeyError(f"{what} {value[:64]!r} {problem}")
    return value


def normalize_prefix(prefix: str) -> str:
    """'/registrator/' -> '/registrator'; every part validated like any other segment."""
    parts = [p for p in prefix.split("/") if p]
    if not parts:
        raise ConfigError(f"--prefix {prefix!r} must name at least one path segment")
    for part in parts:
        problem = segment_problem(part)
        if problem is not None:
            raise ConfigError(f"--prefix {prefix!r}: segment {part!r} {problem}")
    return "/" + "/".join(parts)


class KeySpace:
    """Builds and parses the keys under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = normalize_prefix(prefix)
        self.root = self.prefix + "/"
        self.services_root = self.prefix + "/services/"
        self.hosts_root = self.prefix + "/hosts/"

    def service(self, name: str, service_id: str) -> str:
        return (f"{self.services_root}{check_segment(name, 'service name')}/"
                f"{check_segment(service_id, 'service id')}")

    def host(self, hostname: str) -> str:
        return self.hosts_root + check_segment(hostname, "hostname")

    def index_root(self, hostname: str) -> str:
        """Where one host lists its entries: a range of its own, so that a host reads
        O(its entries), not the whole registry (SPEC §4 keys stay as consumers read them)."""
        return f"{self.prefix}/index/{check_segment(hostname, 'hostname')}/"

    def index(self, hostname: str, name: str, service_id: str) -> str:
        return (f"{self.index_root(hostname)}{check_segment(name, 'service name')}/"
                f"{check_segment(service_id, 'service id')}")

    def child(self, *segments: str) -> str:
        """A key for an extra layout: <prefix>/<seg>/<seg>..., each segment validated."""
        return self.root + "/".join(check_segment(s, "key segment") for s in segments)

    def parse_service(self, key: str) -> tuple[str, str] | None:
        """(name, id) of a services key, or None when the key is not of that shape."""
        if not key.startswith(self.services_root):
            return None
        parts = key[len(self.services_root):].split("/")
        if len(parts) != 2 or any(segment_problem(p) for p in parts):
            return None
        return parts[0], parts[1]

    def owns(self, key: str) -> bool:
        return key.startswith(self.root)
