"""Daemon settings: raw flag values (from click, which also reads REGISTRATOR_* env)
validated into one frozen Config. Every problem is a ConfigError with one line naming the flag."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from registrator import durations
from registrator.desired import MAX_ENTRY_BYTES, Policy
from registrator.errors import ConfigError
from registrator.keys import normalize_prefix, segment_problem
from registrator.layouts import DNS_LABEL

LAYOUTS = ("gliderlabs", "skydns", "etcd-naming")
MIN_TTL = 2


@dataclass(frozen=True, slots=True)
class EtcdEndpoint:
    host: str
    port: int
    secure: bool

    def __str__(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    endpoints: tuple[EtcdEndpoint, ...]
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never shown
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class ZooKeeperSettings:
    """SPEC §10. `hosts` is kazoo's connect string without the chroot."""

    hosts: str
    chroot: str = ""
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never shown
    timeout: float = 5.0  # one request
    session_timeout: float = 30.0  # --ttl for `run`: the session is the daemon's lease

    def __str__(self) -> str:
        return f"zookeeper://{self.hosts}{self.chroot}"


@dataclass(frozen=True, slots=True)
class Config:
    etcd: EtcdSettings
    prefix: str
    ttl: int
    resync: float
    policy: Policy
    layouts: tuple[str, ...] = ()
    skydns_domain: str = "skydns.local"
    host_labels: tuple[tuple[str, str], ...] = ()
    keep_on_exit: bool = False
    takeover: bool = False
    metrics_addr: tuple[str, int] | None = None
    log_level: str = "info"
    zookeeper: ZooKeeperSettings | None = None  # set: ZooKeeper instead of etcd


def parse_duration(text: str, flag: str) -> float:
    """'30', '30s', '500ms', '1m' -> seconds."""
    value = durations.seconds(text)
    if value is None:
        raise ConfigError(f"{flag} {text!r} is not a duration (e.g. 30, 30s, 500ms, 1m)")
    return value


def parse_endpoints(text: str) -> tuple[EtcdEndpoint, ...]:
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        try:
            url = urlsplit(item if "://" in item else f"http://{item}")
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            raise ConfigError(f"--etcd-endpoints {item!r}: {exc}") from None
        if url.scheme not in ("http", "https"):
            raise ConfigError(f"--etcd-endpoints {item!r}: scheme must be http or https")
        try:
            port = url.port or 2379
        except ValueError:
            raise ConfigError(f"--etcd-endpoints {item!r}: invalid port") from None
        if not url.hostname or url.path not in ("", "/") or url.query:
            raise ConfigError(f"--etcd-endpoints {item!r}: want scheme://host:port")
        out.append(EtcdEndpoint(url.hostname, port, url.scheme == "https"))
    if not out:
        raise ConfigError("--etcd-endpoints is empty")
    return tuple(out)


def parse_domain(text: str) -> str:
    domain = text.strip().strip(".").lower()
    labels = domain.split(".")
    if not domain or not all(DNS_LABEL.match(label) for label in labels):
        raise ConfigError(f"--skydns-domain {text!r} is not a DNS domain (e.g. skydns.local)")
    return domain


# The rest of a host record (name, address, lease, version, instance) is well under 1 KiB.
_MAX_HOST_LABEL_BYTES = MAX_ENTRY_BYTES - 1024


def parse_host_labels(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--host-label {item[:64]!r} must look like key=value")
        out[key.strip()] = value
    # The host record carries them: one too big for the store would never be written (a
    # ZooKeeper znode holds under 1 MB), and consumers skip records over MAX_ENTRY_BYTES.
    size = len(json.dumps(out).encode())
    if size > _MAX_HOST_LABEL_BYTES:
        raise ConfigError(f"--host-label: the labels add up to {size} bytes; the host record "
                          f"holds at most {_MAX_HOST_LABEL_BYTES}")
    return tuple(sorted(out.items()))


def parse_ip(text: str, flag: str) -> str:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not an IP address") from None
    if address.is_unspecified:
        raise ConfigError(f"{flag} {text!r} is a wildcard, not an address others can reach")
    return str(address)


def detect_host_ip() -> str:
    """The source address of the default route. connect() on a UDP socket only asks the
    kernel for a route; no packet is sent. Never a loopback address guessed from a name."""
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((target, 9))
                address = ipaddress.ip_address(sock.getsockname()[0])
        except OSError:
            continue
        if not address.is_loopback and not address.is_unspecified:
            return str(address)
    raise ConfigError("could not find this host's address from the default route; pass --ip")


def parse_metrics_addr(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--metrics-addr {text!r} must look like host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def warn_if_exposed(path: str, flag: str) -> None:
    """One line on stderr when a file holding a secret is open to other users (group or
    others may read or write it), as ssh warns about a private key; it is used anyway:
    mounted secrets are often 0644 (issue 21)."""
    try:
        mode = Path(path).stat().st_mode & 0o777
    except OSError:
        return  # reading it says why
    if mode & 0o077:
        sys.stderr.write(f"registrator: warning: {flag} {path!r} is open to other users "
                         f"(mode {mode:04o}); chmod 600 it\n")


def read_secret_file(path: str | None, flag: str) -> str | None:
    if not path:
        return None
    warn_if_exposed(path, flag)
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{flag} {path!r}: {exc.strerror}") from None


def build_config(  # noqa: PLR0913 - one argument per flag, by design
    *,
    etcd_endpoints: str,
    prefix: str = "/registrator",
    ttl: str = "30s",
    resync: str = "60s",
    ip: str | None = None,
    hostname: str | None = None,
    internal: bool = False,
    network: str | None = None,
    ipv6: bool = False,
    explicit: bool = False,
    register_unhealthy: bool = False,
    layout: tuple[str, ...] = (),
    skydns_domain: str = "skydns.local",
    host_label: tuple[str, ...] = (),
    keep_on_exit: bool = False,
    takeover: bool = False,
    metrics_addr: str | None = None,
    log_level: str = "info",
    etcd_cacert: str | None = None,
    etcd_cert: str | None = None,
    etcd_key: str | None = None,
    etcd_user: str | None = None,
    etcd_password: str | None = None,
    etcd_password_file: str | None = None,
    etcd_timeout: str = "5s",
    zookeeper: str | None = None,
    zookeeper_user: str | None = None,
    zookeeper_password: str | None = None,
    zookeeper_password_file: str | None = None,
    given: Iterable[str] = (),
) -> Config:
    endpoints = parse_endpoints(etcd_endpoints)
    ttl_seconds = math.ceil(parse_duration(ttl, "--ttl"))
    if ttl_seconds < MIN_TTL:
        raise ConfigError(f"--ttl {ttl!r} must be at least {MIN_TTL}s")
    for name in layout:
        if name not in LAYOUTS:
            raise ConfigError(f"--layout {name!r} is not one of: {', '.join(LAYOUTS)}")
    host = (hostname or socket.gethostname()).strip()
    if (problem := segment_problem(host)) is not None:
        raise ConfigError(f"--hostname {host!r} {problem}")
    if network is not None and (problem := segment_problem(network)) is not None:
        raise ConfigError(f"--network {network!r} {problem}")
    etcd = store_settings(etcd_endpoints=etcd_endpoints, etcd_cacert=etcd_cacert,
                          etcd_cert=etcd_cert, etcd_key=etcd_key, etcd_user=etcd_user,
                          etcd_password=etcd_password, etcd_password_file=etcd_password_file,
                          etcd_timeout=etcd_timeout, endpoints=endpoints)
    zk = None
    if zookeeper:
        check_one_store(zookeeper, given, etcd_endpoints=etcd_endpoints, etcd_cacert=etcd_cacert,
                        etcd_cert=etcd_cert, etcd_key=etcd_key, etcd_user=etcd_user,
                        etcd_password_file=etcd_password_file, etcd_timeout=etcd_timeout)
        zk = zookeeper_settings(zookeeper, zookeeper_user, zookeeper_password,
                                zookeeper_password_file, session_timeout=ttl_seconds)
    return Config(
        zookeeper=zk,
        etcd=etcd,
        prefix=normalize_prefix(prefix),
        ttl=ttl_seconds,
        resync=parse_duration(resync, "--resync"),
        policy=Policy(
            hostname=host,
            host_ip=parse_ip(ip, "--ip") if ip else detect_host_ip(),
            internal=internal,
            network=network,
            ipv6=ipv6,
            explicit=explicit,
            register_unhealthy=register_unhealthy,
        ),
        layouts=tuple(dict.fromkeys(layout)),
        skydns_domain=parse_domain(skydns_domain),
        host_labels=parse_host_labels(host_label),
        keep_on_exit=keep_on_exit,
        takeover=takeover,
        metrics_addr=parse_metrics_addr(metrics_addr),
        log_level=log_level,
    )


def store_settings(  # noqa: PLR0913 - one argument per store flag, by design
    *,
    etcd_endpoints: str,
    etcd_cacert: str | None = None,
    etcd_cert: str | None = None,
    etcd_key: str | None = None,
    etcd_user: str | None = None,
    etcd_password: str | None = None,
    etcd_password_file: str | None = None,
    etcd_timeout: str = "5s",
    endpoints: tuple[EtcdEndpoint, ...] | None = None,
) -> EtcdSettings:
    """The store flags every subcommand shares (SPEC §7), validated."""
    password = read_secret_file(etcd_password_file, "--etcd-password-file") or etcd_password
    return _etcd_settings(endpoints or parse_endpoints(etcd_endpoints), etcd_cacert, etcd_cert,
                          etcd_key, etcd_user, password,
                          parse_duration(etcd_timeout, "--etcd-timeout"))


def _etcd_settings(  # noqa: PLR0913
    endpoints: tuple[EtcdEndpoint, ...], cacert: str | None, cert: str | None,
    key: str | None, user: str | None, password: str | None, timeout: float,
) -> EtcdSettings:
    for flag, path in (("--etcd-cacert", cacert), ("--etcd-cert", cert), ("--etcd-key", key)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{flag} {path!r}: no such file")
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{flag} {path!r}: not readable by this user (uid {os.getuid()})")
    if bool(cert) != bool(key):
        raise ConfigError("--etcd-cert and --etcd-key go together")
    tls_files = bool(cacert or cert)
    if tls_files and not all(e.secure for e in endpoints):
        raise ConfigError("TLS files given but --etcd-endpoints has http:// endpoints; use https://")
    if bool(user) != bool(password):
        raise ConfigError("etcd auth needs both --etcd-user and a password "
                          "(REGISTRATOR_ETCD_PASSWORD or --etcd-password-file)")
    if user and not all(e.secure for e in endpoints):
        # gRPC refuses to send the auth token over a plaintext channel.
        raise ConfigError("--etcd-user needs https:// --etcd-endpoints (gRPC will not send "
                          "credentials over plaintext)")
    return EtcdSettings(endpoints=endpoints, cacert=cacert, cert=cert, key=key, user=user,
                        password=password, timeout=timeout)


# What `--etcd-*` flags are when nobody set them: any other value means etcd was asked for.
ETCD_DEFAULTS = {"etcd_endpoints": "http://127.0.0.1:2379", "etcd_timeout": "5s"}


def check_one_store(zookeeper: str | None, given: Iterable[str] = (),
                    **etcd_flags: str | None) -> None:
    """--zookeeper and any --etcd-* flag that was given (`given`: names of flags set on the
    command line or in the environment) or is not its default: the user named two stores."""
    if not zookeeper:
        return
    named = sorted({f"--{k.replace('_', '-')}" for k, v in etcd_flags.items()
                    if k in given or (v is not None and v != ETCD_DEFAULTS.get(k))})
    if named:
        raise ConfigError(f"--zookeeper and {', '.join(named)} name two stores; give one")


def _zk_refuses(ch: str) -> bool:
    return ("\ud800" <= ch <= "\uf8ff" or "\ufff0" <= ch <= "\uffff"
            or ch <= "\u001f" or "\u007f" <= ch <= "\u009f")


def zookeeper_settings(text: str, user: str | None, password: str | None,
                       password_file: str | None, session_timeout: float = 30.0,
                       ) -> ZooKeeperSettings:
    """`HOST:PORT[,HOST:PORT...][/chroot]`, validated; digest auth as user + password."""
    hosts_part, slash, chroot = text.strip().partition("/")
    # "HOST:PORT/" has no chroot, as ZooKeeper's own clients (zkCli, kazoo) read it.
    chroot = f"/{chroot}" if slash and chroot else ""
    if chroot:
        try:
            chroot = normalize_prefix(chroot)
        except ConfigError as exc:
            reason = str(exc).split(": ", 1)[-1] if ": " in str(exc) else "has an empty segment"
            raise ConfigError(f"--zookeeper {text!r}: chroot {reason}") from None
        bad = next((i for i, ch in enumerate(chroot) if _zk_refuses(ch)), None)
        if bad is not None:  # ZooKeeper's PathUtils.validatePath; the first create would fail
            raise ConfigError(f"--zookeeper {text!r}: chroot has a character ZooKeeper "
                              f"refuses in a path (U+{ord(chroot[bad]):04X})")
    hosts = _zookeeper_hosts(hosts_part)
    password = read_secret_file(password_file, "--zookeeper-password-file") or password
    if bool(user) != bool(password):
        raise ConfigError("ZooKeeper digest auth needs both --zookeeper-user and a password "
                          "(REGISTRATOR_ZOOKEEPER_PASSWORD or --zookeeper-password-file)")
    if user and ":" in user:
        raise ConfigError(f"--zookeeper-user {user!r} contains ':'")
    return ZooKeeperSettings(",".join(hosts), chroot, user, password,
                             session_timeout=session_timeout)


def _zookeeper_hosts(text: str) -> list[str]:
    hosts = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
            host, port = item, "2181"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--zookeeper {item!r}: invalid port")
        if not host.strip("[]") or any(c in host for c in " @?#"):
            raise ConfigError(f"--zookeeper {item!r}: want HOST:PORT")
        hosts.append(f"{host}:{port}")
    if not hosts:
        raise ConfigError("--zookeeper names no server (want HOST:PORT[,HOST:PORT...][/chroot])")
    return hosts
