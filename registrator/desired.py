"""Container inspect data + policy -> the services it should have (SPEC §2-3). Pure and total:
whatever the input, it returns services and warnings and never raises."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from registrator.addresses import address_override, choose_binding, internal_ip
from registrator.checks import check_spec
from registrator.keys import segment_problem
from registrator.labels import (
    LabelSet,
    LabelValueError,
    PortKey,
    parse_bool,
    parse_env,
    parse_labels,
    parse_port,
    port_label,
    split_tags,
)
from registrator.model import Desired, LabelWarning, Service

COMPOSE_SERVICE = "com.docker.compose.service"
SWARM_SERVICE = "com.docker.swarm.service.name"
SWARM_TASK = "com.docker.swarm.task.name"
# A single entry larger than this is almost surely a mistake (etcd caps requests at 1.5 MiB).
MAX_ENTRY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Policy:
    """The daemon flags that decide what a container produces."""

    hostname: str
    host_ip: str
    internal: bool = False
    network: str | None = None
    ipv6: bool = False  # --internal on a dual-stack network: the IPv6 address
    explicit: bool = False
    register_unhealthy: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    port: PortKey  # the container port, the one labels name
    address: str
    host_port: int


class _Skip(Exception):  # noqa: N818 - control flow inside this module only
    """Stop working on the container (after recording why, when it is worth a warning)."""


def desired_services(container: dict[str, Any], policy: Policy) -> Desired:
    out = Desired()
    name = _container_name(container)
    try:
        _build(container, policy, name, out)
    except _Skip:
        out.services.clear()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        out.services.clear()
        # The type only: the text of a KeyError or ValueError may echo untrusted data.
        problem = f"unreadable container data ({type(exc).__name__})"
        out.warnings.append(LabelWarning(name, "-", problem))
    return out


def _container_name(container: dict[str, Any]) -> str:
    raw = container.get("Name") if isinstance(container, dict) else None
    return raw.lstrip("/") if isinstance(raw, str) else "?"


def _build(c: dict[str, Any], policy: Policy, cname: str, out: Desired) -> None:
    state = c["State"]
    # A container in a restart loop reports Running with Restarting: it is not serving.
    if not state.get("Running") or state.get("Paused") or state.get("Restarting"):
        return
    health = (state.get("Health") or {}).get("Status") or "none"
    if health in ("starting", "unhealthy") and not policy.register_unhealthy:
        return
    config = c["Config"]
    labels = parse_labels(config.get("Labels"), parse_env(config.get("Env")))

    def warn(label: str, message: str) -> None:
        out.warnings.append(LabelWarning(cname, label, message))

    for key, problem in labels.problems:
        warn(key, f"{problem}; label ignored")
    if not _wanted(labels, policy, warn):
        return
    drain = _drain(labels, warn)
    if drain is None:
        return
    out.drain = drain
    endpoints = _endpoints(c, labels, policy, warn)
    if policy.explicit and not _opted_in_wide(labels):
        named = labels.named_ports()
        endpoints = [e for e in endpoints if e.port in named]
    endpoints = [e for e in endpoints if not _port_ignored(labels, e.port, warn)]
    multi = len(endpoints) > 1
    services = [_service(c, cname, labels, policy, ep, multi=multi, health=health, warn=warn)
                for ep in endpoints]
    out.services.extend(_unique(labels, [s for s in services if s is not None], warn))
    # A container-wide label is checked once per port; say what is wrong with it once.
    out.warnings[:] = list(dict.fromkeys(out.warnings))


def _unique(labels: LabelSet, services: list[Service], warn: Any) -> list[Service]:
    """One key per service. A gliderlabs per-port id names a port number, so 53/tcp and
    53/udp share it: the udp one gets ':udp', as in gliderlabs' default ids. Two ports
    given one id on purpose: the first keeps it, the other is skipped with a warning."""
    seen: set[tuple[str, str]] = set()
    out = []
    for candidate in services:
        service = candidate
        if (service.name, service.id) in seen and service.protocol == "udp":
            service = replace(service, id=f"{service.id}:udp")
        key = (service.name, service.id)
        if key in seen or segment_problem(service.id) is not None:
            port = (service.port, service.protocol)
            found = labels.lookup(port, "id")
            warn(found[1] if found else "-", f"id {service.id[:64]!r} is already used by "
                 f"another port of this container; port {port_label(port)} skipped")
            continue
        seen.add(key)
        out.append(service)
    return out


def _wanted(labels: LabelSet, policy: Policy, warn: Any) -> bool:
    enable = labels.ns_wide.fields.get("enable")
    if enable is not None:
        try:
            if not parse_bool(enable):
                return False
        except LabelValueError as exc:
            warn("registrator.enable", f"{exc}; container skipped")
            return False
    if _ignored(labels.ns_wide.fields.get("ignore"), "registrator.ignore", warn):
        return False
    if "ignore" in labels.gl_wide.fields:
        return False
    if policy.explicit:
        return _opted_in_wide(labels) or bool(labels.named_ports())
    return True


def _drain(labels: LabelSet, warn: Any) -> bool | None:
    """registrator.drain, else SERVICE_DRAIN; default true. None: a bad value (warned)."""
    for label, value in (("registrator.drain", labels.ns_wide.fields.get("drain")),
                         ("SERVICE_DRAIN", labels.gl_wide.fields.get("drain"))):
        if value is not None:
            try:
                return parse_bool(value)
            except LabelValueError as exc:
                warn(label, f"{exc}; container skipped")
                return None
    return True


def _opted_in_wide(labels: LabelSet) -> bool:
    enable = labels.ns_wide.fields.get("enable", "")
    return (enable.strip().lower() in ("true", "1", "yes", "on")
            or "name" in labels.ns_wide.fields or "name" in labels.gl_wide.fields)


def _ignored(value: str | None, label: str, warn: Any) -> bool:
    if value is None:
        return False
    try:
        return parse_bool(value)
    except LabelValueError as exc:
        warn(label, f"{exc}; skipped to be safe")
        return True


def _port_ignored(labels: LabelSet, port: PortKey, warn: Any) -> bool:
    scope = labels.ns_ports.get(port)
    label = f"registrator.{port_label(port)}.ignore"
    if scope is not None and _ignored(scope.fields.get("ignore"), label, warn):
        return True
    gl = labels.gl_ports.get(port[0])
    return gl is not None and "ignore" in gl.fields


def _endpoints(c: dict[str, Any], labels: LabelSet, policy: Policy, warn: Any) -> list[Endpoint]:
    mode = c["HostConfig"].get("NetworkMode") or ""
    settings = c.get("NetworkSettings") or {}
    published: dict[str, Any] = settings.get("Ports") or {}
    exposed = list((c["Config"].get("ExposedPorts") or {}).keys())
    if mode == "host":
        ports = _label_ports(labels, warn)
        if not ports and "port" not in labels.ns_wide.fields:
            ports = _docker_ports(exposed)
        return [Endpoint(p, policy.host_ip, p[0]) for p in sorted(ports)]
    if mode.startswith("container:"):
        return []  # it shares another container's network; that one gets registered
    if policy.internal:
        ip = internal_ip(settings.get("Networks") or {}, labels, policy.network, policy.ipv6,
                         warn)
        if ip is None:
            return []
        ports = _docker_ports([*exposed, *published.keys()])
        return [Endpoint(p, ip, p[0]) for p in sorted(ports)]
    endpoints = []
    for key, bindings in published.items():
        ports = _docker_ports([key])
        if not ports or not bindings:
            continue
        choice = choose_binding(bindings, policy.host_ip, warn)
        if choice is not None:
            endpoints.append(Endpoint(ports.pop(), *choice))
    return sorted(endpoints, key=lambda e: e.port)


def _docker_ports(keys: list[str]) -> set[PortKey]:
    """Docker's '80/tcp' keys; sctp and anything odd is not ours to register."""
    out = set()
    for key in keys:
        try:
            out.add(parse_port(key))
        except LabelValueError:
            continue
    return out


def _label_ports(labels: LabelSet, warn: Any) -> set[PortKey]:
    ports: set[PortKey] = labels.named_ports(gliderlabs_protocols=("tcp",))
    for item in labels.ns_wide.fields.get("port", "").split(","):
        if item.strip():
            try:
                ports.add(parse_port(item))
            except LabelValueError as exc:
                warn("registrator.port", f"{exc}; that port skipped")
    return ports


def _raw(labels: LabelSet, port: PortKey, what: str) -> str | None:
    found = labels.lookup(port, what)
    return found[0] if found else None


def default_name(c: dict[str, Any], cname: str) -> str:
    """A compose or Swarm service's name (all its replicas share it), else the image's."""
    labels = c["Config"].get("Labels") or {}
    for key in (COMPOSE_SERVICE, SWARM_SERVICE):
        if labels.get(key):
            return str(labels[key])
    image = str(c["Config"].get("Image") or "")
    if not image or image.startswith("sha256:"):
        return cname
    base = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return base.split(":", 1)[0] or cname


def _service(  # noqa: PLR0913 - the parts of one entry, all needed
    c: dict[str, Any], cname: str, labels: LabelSet, policy: Policy, ep: Endpoint,
    *, multi: bool, health: str, warn: Any,
) -> Service | None:
    port, suffix = ep.port, f"-{ep.port[0]}"
    found = labels.lookup(port, "name")
    name, name_label, per_port = found or (default_name(c, cname), "-", False)
    if multi and not per_port:
        name += suffix
    # A Swarm task is named by its task label (<service>.<slot>.<task id>), as
    # `docker service ps` shows it.
    instance = str((c["Config"].get("Labels") or {}).get(SWARM_TASK) or cname)
    default_id = f"{policy.hostname}:{instance}:{port[0]}" + (":udp" if port[1] == "udp" else "")
    found = labels.lookup(port, "id")
    sid, id_label, per_port = found or (default_id, "-", True)
    if multi and not per_port:
        sid += f":{port[0]}" + (":udp" if port[1] == "udp" else "")
    for value, label, what in ((name, name_label, "name"), (sid, id_label, "id")):
        problem = segment_problem(value)
        if problem is not None:
            raw = _raw(labels, port, what) or value  # the label as written, not suffixed
            warn(label, f"service {what} {raw[:64]!r} {segment_problem(raw) or problem}; "
                        "service skipped")
            return None
    ok, address = address_override(labels, port, warn)
    if not ok:
        return None
    found = labels.lookup(port, "tags")
    service = Service(
        name=name, id=sid, address=address or ep.address, port=ep.host_port, protocol=port[1],
        host=policy.hostname, container_id=str(c["Id"]), container_name=str(c["Name"]),
        image=str(c["Config"].get("Image") or ""),
        tags=split_tags(found[0]) if found else (),
        meta=tuple(sorted(labels.meta(port).items())), health=health,
        check=check_spec(labels, port, warn),
    )
    size = len(json.dumps(service.to_record("")).encode())
    if size > MAX_ENTRY_BYTES:
        warn("-", f"entry for port {port_label(port)} would be {size} bytes "
                  f"(limit {MAX_ENTRY_BYTES}); skipped")
        return None
    return service
