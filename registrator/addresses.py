"""Which address a service is registered at (SPEC §2): a published binding's host address,
the container's own address on one of its networks (--internal), or the `registrator.address`
label. Pure. Addresses are stored bare (`::1`, never `[::1]`); brackets belong to whoever
writes `address:port` (layouts.host_port)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from registrator.labels import LabelSet, PortKey

Warn = Callable[[str, str], None]
NETWORK_LABEL = "registrator.network"
# An IPv6 zone names an interface (or its number). ipaddress takes any text there, a newline
# too, which would reach the consumers' templates as a line of its own.
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_address(text: str) -> str | None:
    """A usable address, normalised (`FD00:0::1` -> `fd00::1`); None for anything else,
    wildcards included: nobody can connect to 0.0.0.0."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    zone = getattr(address, "scope_id", None)
    if address.is_unspecified or (zone is not None and not _ZONE.fullmatch(zone)):
        return None
    return str(address)


def choose_binding(bindings: list[dict[str, str]], host_ip: str, warn: Warn,
                   ) -> tuple[str, int] | None:
    """One (address, host port) per container port: wildcard bindings (0.0.0.0, ::) become
    the host address; a binding on one specific address registers that address, IPv6 too.
    With several distinct bindings the lowest IPv4 one wins, deterministically."""
    candidates = set()
    for binding in bindings:
        try:
            port = int(binding.get("HostPort") or "")
        except ValueError:
            continue
        host = (binding.get("HostIp") or "").strip().strip("[]")  # bare, whatever the engine
        if host in ("", "0.0.0.0", "::"):
            candidates.add((host_ip, port))
        elif (address := parse_address(host)) is not None:
            candidates.add((address, port))
        else:
            warn("-", f"Docker reports host address {host[:64]!r} for host port {port}, "
                      "which is not an IP address; that binding skipped")
    if not candidates:
        return None
    return min(candidates, key=lambda c: (_version(c[0]), c[1], c[0]))


def _version(address: str) -> int:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:  # a host address given by name: after every literal one
        return 99


def internal_ip(networks: Mapping[str, Any], labels: LabelSet, policy_network: str | None,
                ipv6: bool, warn: Warn) -> str | None:
    """The container's own address for --internal: on the network `registrator.network`
    names, else on --network, else on its only network. IPv4 on a dual-stack network unless
    `ipv6`; the IPv6 address on an IPv6-only one."""
    wanted = labels.ns_wide.fields.get("network")
    if wanted is not None:
        if wanted not in networks:
            warn(NETWORK_LABEL, f"the container is not on network {wanted[:64]!r} (it is on "
                                f"{_names(networks)}); container skipped")
            return None
        return _address(networks[wanted], ipv6)
    if policy_network is not None:
        return _address(networks.get(policy_network), ipv6)
    found = {name: ip for name, net in networks.items() if (ip := _address(net, ipv6))}
    if len(found) > 1:
        warn("-", f"on {len(found)} networks ({_names(found)}): set the label "
                  f"{NETWORK_LABEL}=<network> (or pass --network) to choose one; "
                  "container skipped")
        return None
    return next(iter(found.values()), None)


def _address(net: Any, ipv6: bool) -> str | None:
    if not isinstance(net, Mapping):
        return None
    v4 = parse_address(str(net.get("IPAddress") or ""))
    v6 = parse_address(str(net.get("GlobalIPv6Address") or ""))
    return (v6 or v4) if ipv6 else (v4 or v6)


def _names(networks: Mapping[str, Any]) -> str:
    names = sorted(networks)
    shown = ", ".join(n[:64] for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def address_override(labels: LabelSet, port: PortKey, warn: Warn) -> tuple[bool, str | None]:
    """(ok, address) from `registrator.address` / `registrator.<port>.address`: (True, None)
    when unset; (False, None) after warning about a value that is not an IP address."""
    found = labels.lookup(port, "address")
    if found is None or not found[1].startswith("registrator."):
        return True, None  # SERVICE_ADDRESS keeps its gliderlabs meaning: meta
    value, label, _ = found
    address = parse_address(value)
    if address is None:
        warn(label, f"{value[:64]!r} is not an IP address others can reach (want e.g. "
                    "10.0.0.5 or fd00::5, without brackets); service skipped")
        return False, None
    return True, address
