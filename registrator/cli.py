"""Command line. Every flag also reads REGISTRATOR_<FLAG> from the environment."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

from registrator import __version__
from registrator.errors import ConfigError, StoreError
from registrator.stores.base import Store

ENV = {"auto_envvar_prefix": "REGISTRATOR", "show_default": True}


F = TypeVar("F", bound=Callable[..., Any])


def _option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, show_envvar=True, **kwargs)


def _switch(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A mode switch of a one-shot command (--json, ls --hosts, render --once): no
    environment variable, so an exported one never changes what a command prints or does."""
    return click.option(*decls, allow_from_autoenv=False, **kwargs)


class Duration(click.ParamType[str]):
    """A duration as operators write it (30, 30s, 500ms, 1m), shown as DURATION in --help.
    The text goes on unchanged: settings.py parses it and names the flag when it is bad."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,  # noqa: ARG002 - click's
                ctx: click.Context | None) -> str:  # noqa: ARG002 - signature
        return str(value)


DURATION = Duration()


class LazyGroup(click.Group):
    """Subcommands imported when named (click's documented pattern): `config` pulls in
    python-gnupg and the configuration-value code, which `run` never uses (~2 MB, ~40 ms)."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command's first sentence whole (click cuts it at the terminal's width and
        adds "..."); the formatter wraps long ones instead."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, _, attr = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command


@click.group(cls=LazyGroup, lazy={"config": "registrator.cli_config:config",
                                  # starlette, uvicorn and the DNS side: serve's alone.
                                  "serve": "registrator.serve.cli:serve_command"})
@click.version_option(__version__, prog_name="registrator")
def cli() -> None:
    """Registers Docker containers' published ports in etcd v3 (or ZooKeeper)."""


STORE_FLAGS = ("etcd_endpoints", "etcd_cacert", "etcd_cert", "etcd_key", "etcd_user",
               "etcd_password_file", "etcd_timeout")


def store_options(func: F) -> F:
    """The store flags every subcommand takes, the same way (SPEC §1, §7)."""
    for decorator in reversed((
        _option("--etcd-endpoints", default="http://127.0.0.1:2379",
                help="Comma list of etcd endpoints (http:// or https://)."),
        _option("--prefix", default="/registrator",
                help="Key prefix; nothing is written outside it."),
        _option("--etcd-cacert", default=None, help="CA bundle to verify etcd."),
        _option("--etcd-cert", default=None, help="Client certificate for etcd."),
        _option("--etcd-key", default=None, help="Client key for etcd."),
        _option("--etcd-user", default=None,
                help="etcd user; the password comes from REGISTRATOR_ETCD_PASSWORD or a file."),
        _option("--etcd-password-file", default=None, help="File holding the etcd password."),
        _option("--etcd-timeout", default="5s", type=DURATION, help="Timeout of one etcd request."),
        _option("--zookeeper", default=None,
                help="HOST:PORT[,HOST:PORT...][/chroot]: use ZooKeeper instead of etcd."),
        _option("--zookeeper-user", default=None,
                help="ZooKeeper digest user; the password comes from "
                     "REGISTRATOR_ZOOKEEPER_PASSWORD or a file."),
        _option("--zookeeper-password-file", default=None,
                help="File holding the ZooKeeper digest password."),
    )):
        func = decorator(func)
    return func


def etcd_password() -> str | None:
    """The password never comes from a flag: flags show up in `ps`."""
    return os.environ.get("REGISTRATOR_ETCD_PASSWORD") or None


def zookeeper_password() -> str | None:
    return os.environ.get("REGISTRATOR_ZOOKEEPER_PASSWORD") or None


def given_flags() -> list[str]:
    """The store flags set on the command line or in the environment, not left at their
    defaults (an explicit default etcd endpoint still names etcd)."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return []
    return [name for name in STORE_FLAGS
            if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)]


def open_store(flags: dict[str, Any], *, read_only: bool = False) -> Store:
    """The store named by the shared store flags (a subcommand's other flags are ignored).
    `read_only`: for commands that only read (stores.readers: they create nothing)."""
    from registrator.settings import (
        EtcdSettings,
        ZooKeeperSettings,
        check_one_store,
        store_settings,
        zookeeper_settings,
    )

    etcd_flags = {k: flags[k] for k in STORE_FLAGS}
    settings: EtcdSettings | ZooKeeperSettings
    if flags.get("zookeeper"):
        check_one_store(flags["zookeeper"], given_flags(), **etcd_flags)
        settings = zookeeper_settings(
            flags["zookeeper"], flags.get("zookeeper_user"), zookeeper_password(),
            flags.get("zookeeper_password_file"))
    else:
        settings = store_settings(etcd_password=etcd_password(), **etcd_flags)
    if read_only:
        from registrator.stores.readers import open_read_only

        return open_read_only(settings)
    if isinstance(settings, ZooKeeperSettings):
        from registrator.stores.zookeeper import ZooKeeperStore

        return ZooKeeperStore(settings)
    from registrator.stores.etcd import EtcdStore

    return EtcdStore(settings)


@cli.command(context_settings=ENV)
@store_options
@_option("--ttl", default="30s", type=DURATION,
         help="Lease TTL (30, 30s, 1m); with --zookeeper, the session timeout.")
@_option("--resync", default="60s", type=DURATION, help="Full reconcile interval; 0 disables.")
@_option("--ip", default=None, help="Address to register [default: source of default route].")
@_option("--hostname", default=None, help="Name of this host in keys [default: hostname].")
@_option("--internal", is_flag=True, help="Register container IPs and exposed ports.")
@_option("--network", default=None, help="With --internal: the Docker network to use.")
@_option("--ipv6", is_flag=True,
         help="With --internal: a dual-stack network's IPv6 address, not its IPv4 one.")
@_option("--explicit", is_flag=True, help="Only register containers that opt in by label.")
@_option("--register-unhealthy", is_flag=True, help="Register containers whatever their health.")
@_option("--layout", multiple=True,
         help="Extra key layout (gliderlabs, skydns, etcd-naming); may repeat.")
@_option("--skydns-domain", default="skydns.local", help="Domain of --layout skydns records.")
@_option("--host-label", multiple=True, help="key=value for this host's record; may repeat.")
@_option("--keep-on-exit", is_flag=True, help="Do not revoke the lease on SIGTERM.")
@_option("--takeover", is_flag=True,
         help="Take this host name over from a daemon that still runs with it.")
@_option("--metrics-addr", default=None, help="host:port for /metrics and /healthz.")
@_option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def run(**flags: Any) -> None:
    """Run the daemon: follow Docker events, keep the store in step."""
    # Imported here so `registrator --help` stays fast and light.
    from registrator import logs
    from registrator.daemon import Daemon
    from registrator.docker_source import DockerSource
    from registrator.settings import build_config

    config = build_config(etcd_password=etcd_password(),
                          zookeeper_password=zookeeper_password(), given=given_flags(),
                          **flags)
    logs.configure(config.log_level)
    store: Store
    if config.zookeeper is not None:
        from registrator.stores.zookeeper import ZooKeeperStore

        store = ZooKeeperStore(config.zookeeper)
    else:
        from registrator.stores.etcd import EtcdStore

        store = EtcdStore(config.etcd)
    docker = DockerSource(os.environ)
    stop = threading.Event()
    daemon = Daemon(config, docker, store, stop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: daemon.reload())
    sys.exit(daemon.run())


@cli.command(context_settings=ENV)
@_option("--metrics-addr", default=None, help="Where the daemon serves /healthz.")
@_option("--timeout", default=3.0, type=float, help="Seconds to wait for an answer.")
def healthcheck(metrics_addr: str | None, timeout: float) -> None:
    """Exit 0 when the daemon's /healthz answers ok, 1 otherwise (a container HEALTHCHECK)."""
    import urllib.error
    import urllib.request

    from registrator.settings import parse_metrics_addr

    address = parse_metrics_addr(metrics_addr)
    if address is None:
        raise ConfigError("--metrics-addr (REGISTRATOR_METRICS_ADDR) is not set")
    host, port = address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            click.echo(response.read().decode().strip())
    except urllib.error.HTTPError as exc:
        click.echo(exc.read().decode(errors="replace").strip(), err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"unhealthy: {url}: {exc}", err=True)
        sys.exit(1)


# Read-only consumers of the registry (SPEC §8).


@contextlib.contextmanager
def _consumer(flags: dict[str, Any]) -> Iterator[tuple[Store, Any]]:
    """The store and key space a read-only subcommand works on; the store closed after."""
    from registrator import logs
    from registrator.keys import KeySpace

    logs.configure(flags.get("log_level") or "warning")
    try:
        store = open_store(flags, read_only=True)
    except StoreError as exc:  # a wrong chroot: no retry makes it right
        raise click.ClickException(" ".join(str(exc).split())) from None
    try:
        yield store, KeySpace(flags["prefix"])
    finally:
        store.close()


_LOG_LEVEL = click.Choice(["debug", "info", "warning", "error"])


@cli.command(name="ls", context_settings=ENV)
@click.argument("name", required=False)
@store_options
@_switch("--host", default=None, help="Only entries of this host.")
@_switch("--json", "as_json", is_flag=True, help="One JSON array of the stored entries.")
@_switch("--hosts", is_flag=True, help="List the host records (cluster membership) instead.")
def ls_command(name: str | None, **flags: Any) -> None:
    """Show what is registered: a table, or JSON for scripts."""
    from registrator.consumers import commands

    with _consumer(flags) as (store, keys):
        commands.ls(store, keys, name, flags["host"], flags["as_json"], flags["hosts"])


@cli.command(name="watch", context_settings=ENV)
@click.argument("name", required=False)
@store_options
@_switch("--json", "as_json", is_flag=True, help='Lines of {"op","key","value","revision"}.')
@_option("--log-level", default="warning", type=_LOG_LEVEL)
def watch_command(name: str | None, **flags: Any) -> None:
    """Print one line per change under the prefix, from now on; survives store outages."""
    from registrator.consumers import commands

    with _consumer(flags) as (store, keys):
        commands.watch(store, keys, name, flags["as_json"])


@cli.command(name="render", context_settings=ENV)
@store_options
@_option("--template", default=None, help="Jinja2 template to render.")
@_option("--dest", default=None, help="File the template renders to.")
@_option("--check-cmd", default=None, help="Run on the staged file ({src}) before the swap.")
@_option("--reload-cmd", default=None, help="Run after DEST changed.")
@_option("--reload-container", default=None,
         help="LABEL=VALUE: signal those containers through the Docker API after a change.")
@_option("--reload-signal", default="HUP", help="Signal for --reload-container.")
# REGISTRATOR_RENDER_WAIT: `config exec --wait` has other defaults, and one variable for
# both would set one command's timing with the other's value.
@_option("--wait", default="200ms:2s", envvar="REGISTRATOR_RENDER_WAIT", metavar="MIN[:MAX]",
         help="Quiet time before rendering, and the longest delay after a first change.")
@_switch("--once", is_flag=True, help="Render once and exit (0 ok, 1 on any failure).")
@_option("--in-place", is_flag=True, help="Rewrite DEST itself (single-file bind mounts).")
@_option("--mode", default=None,
         help="Octal mode of DEST, e.g. 0644 [default: DEST's; 0600 when it holds a secret].")
@_option("--owner", default=None, help="User (name or uid) DEST gets [default: DEST's].")
@_option("--group", default=None, help="Group (name or gid) DEST gets [default: DEST's].")
@_option("--hostname", default=None,
         help="Host whose configuration values config() reads [default: hostname].")
@_option("--secret-keyring", default=None,
         help="Armored secret keyring to decrypt encrypted configuration values.")
@_option("--config", default=None, help="TOML file of [[template]] tables; SIGHUP re-reads.")
@_option("--cmd-timeout", default="30s", type=DURATION,
         help="Timeout of each check and reload command.")
@_option("--metrics-addr", default=None, help="host:port for /metrics and /healthz.")
@_option("--log-level", default="info", type=_LOG_LEVEL)
def render_command(**flags: Any) -> None:
    """Keep files rendered from the registry: checked, swapped in, reloaded."""
    from registrator.consumers import commands

    with _consumer(flags) as (store, keys):
        commands.render(store, keys, flags)


def _usage_hint(exc: click.UsageError, args: Sequence[str]) -> str:
    """Where to look: the help of the command the arguments name (click leaves `ctx` unset
    for some parser errors), and for an unknown command the group that has it."""
    ctx = click.Context(cli, info_name="registrator")
    path: list[str] = ["registrator"]
    command: click.Command = cli
    for arg in args:
        if not isinstance(command, click.Group) or (sub := command.get_command(ctx, arg)) is None:
            break
        path.append(arg)
        command, ctx = sub, click.Context(sub, parent=ctx, info_name=arg)
    hint = f" (see: {' '.join(path)} --help)"
    unknown = next((a for a in args[len(path) - 1:] if not a.startswith("-")), None)
    if isinstance(command, click.Group) and unknown and "No such command" in exc.message:
        for name in command.list_commands(ctx):
            group = command.get_command(ctx, name)
            if isinstance(group, click.Group) and unknown in group.list_commands(ctx):
                hint += f" (did you mean: {' '.join(path)} {name} {unknown}?)"
    return hint


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="registrator", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # A bare group (`registrator config`) asks what it can do: its help, not an error.
        click.echo(exc.ctx.get_help() if exc.ctx is not None else cli.get_help(
            click.Context(cli, info_name="registrator")))
        sys.exit(0)
    except click.UsageError as exc:  # bad flags: one line, exit 2
        click.echo(f"registrator: error: {exc.format_message()}{_usage_hint(exc, args)}",
                   err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"registrator: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"registrator: error: {exc}", err=True)
        sys.exit(2)
    except click.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
