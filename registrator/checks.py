"""Health-check labels (SPEC §6), pure: a container's labels + one port -> a CheckSpec.

`registrator.check.http=/path` (optional `.http.status`), `registrator.check.tcp=true`, with
`.interval`, `.timeout`, `.rise`, `.fall`; per port as `registrator.<port>.check.*`;
gliderlabs' SERVICE_CHECK_HTTP/TCP/INTERVAL/TIMEOUT map onto the same. A bad value makes the
service have no label check (the warning says so); it never hides the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from registrator import durations
from registrator.labels import LabelSet, LabelValueError, PortKey, parse_bool

DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 2.0
DEFAULT_RISE = 2
DEFAULT_FALL = 3
MIN_INTERVAL = 0.1
MAX_COUNT = 100
Warn = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    kind: str  # "http" or "tcp"
    path: str = "/"
    statuses: tuple[int, ...] = ()  # empty: any 2xx or 3xx passes
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    rise: int = DEFAULT_RISE
    fall: int = DEFAULT_FALL

    def passes(self, status: int) -> bool:
        return status in self.statuses if self.statuses else 200 <= status < 400


class _BadCheck(Exception):  # noqa: N818 - control flow inside this module
    def __init__(self, label: str, problem: str) -> None:
        super().__init__(problem)
        self.label = label


def check_spec(labels: LabelSet, port: PortKey, warn: Warn) -> CheckSpec | None:
    """The check for one port, or None (no check labels, or bad ones: warned)."""
    try:
        return _spec(labels, port)
    except _BadCheck as bad:
        warn(bad.label, f"{bad}; the service has no label check")
        return None


def _spec(labels: LabelSet, port: PortKey) -> CheckSpec | None:
    kind, path = _kind(labels, port)
    if kind is None:
        return None
    if port[1] != "tcp":
        found = labels.lookup_check(port, kind)
        raise _BadCheck(found[1] if found else "-", f"a {kind} check cannot probe a udp port")
    interval = _duration(labels, port, "interval", DEFAULT_INTERVAL)
    timeout = _duration(labels, port, "timeout", DEFAULT_TIMEOUT)
    if interval < MIN_INTERVAL:
        raise _BadCheck(_label(labels, port, "interval"),
                        f"interval {interval}s is below {MIN_INTERVAL}s")
    if timeout <= 0:
        raise _BadCheck(_label(labels, port, "timeout"), "timeout must be above 0")
    return CheckSpec(
        kind=kind, path=path, statuses=_statuses(labels, port) if kind == "http" else (),
        interval=interval, timeout=min(timeout, interval),
        rise=_count(labels, port, "rise", DEFAULT_RISE),
        fall=_count(labels, port, "fall", DEFAULT_FALL),
    )


def _kind(labels: LabelSet, port: PortKey) -> tuple[str | None, str]:
    """The strongest scope that names a check kind decides it; http wins within a scope."""
    for _, scope, _ in labels.scopes(port):
        if "http" in scope.checks:
            found = labels.lookup_check(port, "http")
            assert found is not None  # noqa: S101 - the scope has it
            path, label = found
            if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
                raise _BadCheck(label, f"http check path {path[:64]!r} must start with '/' "
                                "and have no spaces or control characters")
            return "http", path
        if "tcp" in scope.checks:
            value, label = labels.lookup_check(port, "tcp") or ("", "-")
            try:
                return ("tcp" if parse_bool(value) else None), "/"
            except LabelValueError as exc:
                raise _BadCheck(label, str(exc)) from None
    return None, "/"


def _label(labels: LabelSet, port: PortKey, name: str) -> str:
    found = labels.lookup_check(port, name)
    return found[1] if found else "-"


def _duration(labels: LabelSet, port: PortKey, name: str, default: float) -> float:
    found = labels.lookup_check(port, name)
    if found is None:
        return default
    value = durations.seconds(found[0])
    if value is None:
        raise _BadCheck(found[1], f"{found[0][:40]!r} is not a duration (e.g. 5s, 500ms, 1m)")
    return value


def _count(labels: LabelSet, port: PortKey, name: str, default: int) -> int:
    found = labels.lookup_check(port, name)
    if found is None:
        return default
    text = found[0].strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_COUNT:
        raise _BadCheck(found[1], f"{found[0][:40]!r} is not a count from 1 to {MAX_COUNT}")
    return int(text)


def _statuses(labels: LabelSet, port: PortKey) -> tuple[int, ...]:
    found = labels.lookup_check(port, "http.status")
    if found is None:
        return ()
    codes = []
    for item in found[0].split(","):
        text = item.strip()
        if not (text.isascii() and text.isdigit()) or not 100 <= int(text) <= 599:
            raise _BadCheck(found[1], f"{item[:20]!r} is not an HTTP status code")
        codes.append(int(text))
    return tuple(sorted(set(codes)))
