"""`registrator config ...` (SPEC §9): configuration values with per-host overrides, crypt's
encryption, and `config exec`. Every command takes the store flags `run` takes, the same way.

Exit codes: 0 done; 1 one line when the store, a keyring or a value is the problem; 2 one
line for bad names or flags (nothing is written then)."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import click

from registrator import logs
from registrator.cli import DURATION, ENV, _option, _switch, open_store, store_options
from registrator.cli_config_common import ProgramCommand
from registrator.cli_config_common import host_option as _host_option
from registrator.cli_config_common import one_line_errors as _one_line_errors
from registrator.cli_config_common import resolved_host as _host
from registrator.cli_config_zones import grant, revoke
from registrator.configvalues.crypt import encrypt as crypt_encrypt
from registrator.configvalues.environment import program_base_env
from registrator.configvalues.names import (
    ConfigLayout,
    check_app,
    check_env_prefix,
    check_host,
    check_key,
)
from registrator.configvalues.resolve import ConfigReader, Source
from registrator.configvalues.runner import ProgramError, run_program
from registrator.configvalues.values import (
    EnvLoader,
    NotSetError,
    describe,
    plaintext,
    shown,
    watch_policy,
)
from registrator.errors import ConfigError
from registrator.settings import parse_duration

_LS_WIDTH = 60  # longest value `config ls` shows in its table


@click.group(context_settings=ENV)
def config() -> None:
    """Configuration values: defaults per app, overrides per host, optionally encrypted."""


config.add_command(grant)
config.add_command(revoke)


@config.command("set", context_settings=ENV)
@click.argument("app")
@click.argument("key")
@click.argument("value")
@click.option("--host", default=None, allow_from_autoenv=False,
              help="Store an override for this host only [default: the app's default].")
@click.option("--encrypt", is_flag=True, allow_from_autoenv=False,
              help="Store the value in crypt's encrypted format.")
@_option("--keyring", default=None, help="ASCII-armored public keyring for --encrypt.")
@click.option("--allow-argv", is_flag=True, allow_from_autoenv=False,
              help="With --encrypt: accept VALUE on the command line (`ps` shows it).")
@store_options
@_one_line_errors
def set_(  # noqa: PLR0913 - one argument per flag, by design
        app: str, key: str, value: str, host: str | None, encrypt: bool, keyring: str | None,
        allow_argv: bool, **flags: Any) -> None:
    """Set KEY of APP to VALUE ('-' reads the value from stdin).

    Example: registrator config set shop password - --encrypt --keyring pub.asc < pw.txt"""
    layout = ConfigLayout.under(flags["prefix"])
    target = layout.key_for(app, key, None if host is None else check_host(host))
    if encrypt and not keyring:
        raise ConfigError("--encrypt needs --keyring (or REGISTRATOR_KEYRING): the public "
                          "keyring to encrypt for")
    given = click.get_current_context().get_parameter_source("keyring")
    if keyring and not encrypt and given == click.core.ParameterSource.COMMANDLINE:
        # Storing in clear what the user meant to encrypt would be the worst outcome.
        raise ConfigError("--keyring without --encrypt: add --encrypt to store the value "
                          "encrypted")
    if encrypt and value != "-" and not allow_argv:
        # Checked before anything is read or written: the value is already in `ps`, but it
        # goes no further, and the hint says how to keep it out next time.
        raise ConfigError("a value to --encrypt on the command line is visible in `ps` to "
                          "every user of this host: give '-' and pipe it on stdin, or "
                          "--allow-argv")
    data = sys.stdin.buffer.read() if value == "-" else value.encode("utf-8", "surrogateescape")
    if encrypt and keyring:
        data = crypt_encrypt(data, keyring)
    store = open_store(flags)
    try:
        store.put(target, data)
    finally:
        store.close()


@config.command(context_settings=ENV)
@click.argument("app")
@click.argument("key")
@_host_option
@_option("--secret-keyring", default=None,
         help="ASCII-armored secret keyring to decrypt encrypted values.")
@click.option("--default", "default", default=None, allow_from_autoenv=False,
              help="Printed when the store has no value.")
@store_options
@_one_line_errors
def get(app: str, key: str, host: str | None, secret_keyring: str | None,
        default: str | None, **flags: Any) -> None:
    """Print the value of KEY of APP as this host sees it: its override, else the default."""
    check_app(app)
    check_key(key)
    who = _host(host)
    store = open_store(flags, read_only=True)
    try:
        caller = None if default is None else default.encode("utf-8", "surrogateescape")
        resolved = ConfigReader(store, flags["prefix"]).value(app, key, who, caller)
    finally:
        store.close()
    if resolved is None:
        raise NotSetError(f"{key!r} of app {app!r} is not set (host {who!r}, nor default)")
    data = resolved.value if resolved.source is Source.CALLER else plaintext(
        resolved, secret_keyring)
    out = sys.stdout.buffer
    out.write(data if data.endswith(b"\n") else data + b"\n")
    out.flush()


@config.command("ls", context_settings=ENV)
@click.argument("app")
@_host_option
@_switch("--json", "as_json", is_flag=True, help="One JSON array of the resolved values.")
@store_options
@_one_line_errors
def ls(app: str, host: str | None, as_json: bool, **flags: Any) -> None:
    """List APP's values as this host sees them, and where each comes from. Encrypted values
    are marked, never shown."""
    check_app(app)
    who = _host(host)
    store = open_store(flags, read_only=True)
    try:
        values = ConfigReader(store, flags["prefix"]).app(app, who)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([describe(r, who) for r in values.values()], indent=2))
        return
    rows = [(r.key, f"host {who}" if r.source == "host" else str(r.source),
             shown(r, _LS_WIDTH)) for r in values.values()]
    if not rows:
        return
    widths = [max(len(h), *(len(row[i]) for row in rows))
              for i, h in enumerate(("KEY", "SOURCE"))]
    click.echo(f"{'KEY':<{widths[0]}}  {'SOURCE':<{widths[1]}}  VALUE")
    for k, source, value in rows:
        click.echo(f"{k:<{widths[0]}}  {source:<{widths[1]}}  {value}")


@config.command(context_settings=ENV)
@click.argument("app")
@click.argument("key")
@click.option("--host", default=None, allow_from_autoenv=False,
              help="Remove this host's override [default: remove the app's default].")
@store_options
@_one_line_errors
def rm(app: str, key: str, host: str | None, **flags: Any) -> None:
    """Remove KEY of APP: its default, or with --host that host's override."""
    target = ConfigLayout.under(flags["prefix"]).key_for(
        app, key, None if host is None else check_host(host))
    store = open_store(flags)
    try:
        existed = store.delete(target)
    finally:
        store.close()
    if not existed:
        where = f"override for host {host!r}" if host else "default"
        raise NotSetError(f"{key!r} of app {app!r} has no {where}")


_STOPPING_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL})


def _signal_number(name: str | None) -> int | None:
    if name is None:
        return None
    text = name.upper().removeprefix("SIG")
    try:
        return int(signal.Signals[f"SIG{text}"]) if not text.isdigit() else int(
            signal.Signals(int(text)))
    except (KeyError, ValueError):
        raise ConfigError(f"--signal {name!r} is not a signal name (e.g. HUP, USR1)") from None


@config.command("exec", cls=ProgramCommand, context_settings=ENV)
@click.argument("app")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_host_option
@_option("--secret-keyring", default=None,
         help="ASCII-armored secret keyring to decrypt encrypted values.")
@_option("--prefix-env", default="", help="Prefix of every variable name (e.g. SHOP_).")
@_option("--watch", is_flag=True, help="Restart the command (or --signal it) on a change.")
@_option("--signal", "signal_name", default=None, envvar="REGISTRATOR_SIGNAL",
         help="With --watch: send this signal on a change instead of restarting.")
@_option("--interval", default="1s", type=DURATION, help="With --watch: time between two reads.")
# REGISTRATOR_EXEC_WAIT: render's --wait has other defaults (see cli.py).
@_option("--wait", default="500ms:5s", envvar="REGISTRATOR_EXEC_WAIT", metavar="MIN[:MAX]",
         help="With --watch: MIN[:MAX] quiet time before a change is applied.")
@_option("--kill-timeout", default="10s", type=DURATION,
         help="SIGKILL the program's process group this long after SIGTERM (restart, stop).")
@_option("--retry-for", default="30s", type=DURATION,
         help="A store unreachable at start is retried this long (0: exit at once).")
@_option("--allow-env", multiple=True,
         help="Let the store set variable NAME although it can pick what runs (PATH, LD_*, "
         "HOME...); may repeat.")
@_option("--pass-env", multiple=True,
         help="Let exec's own REGISTRATOR_* variable NAME reach the program; may repeat.")
@_option("--log-level", default="warning", type=click.Choice(logs.LEVELS),
         help="exec's own log lines (stderr); the command's output is its own.")
@store_options
@_one_line_errors
def exec_(  # noqa: PLR0913 - one argument per flag, by design
        app: str, command: tuple[str, ...], host: str | None, secret_keyring: str | None,
        prefix_env: str, watch: bool, signal_name: str | None, interval: str, wait: str,
        kill_timeout: str, retry_for: str, allow_env: tuple[str, ...],
        pass_env: tuple[str, ...], log_level: str, **flags: Any) -> None:
    """Run COMMAND with APP's values as environment variables (db.url -> DB_URL).

    A variable the store has no value for keeps what the environment gives it, so the
    program's own defaults still work. Signals to exec go to COMMAND; exec exits with
    COMMAND's exit code. Use `--` before COMMAND when it has options of its own.

    The program gets exec's environment without exec's own REGISTRATOR_* settings (its
    store credentials among them) unless --pass-env names one."""
    # Before the store is opened: what the program inherits is the environment exec was
    # given, not what exec's own libraries set for themselves.
    base_env = program_base_env(os.environ, pass_env)
    check_app(app)
    check_env_prefix(prefix_env)
    who = _host(host)
    sig = _signal_number(signal_name)
    if sig is not None and not watch:
        raise ConfigError("--signal only makes sense with --watch")
    if sig in _STOPPING_SIGNALS:
        # The program would stop at the first change and exec with it: that is a restart
        # done wrong. Without --signal, a change restarts the program.
        raise ConfigError(f"--signal {signal_name}: the program would stop at the first "
                          "change; leave --signal out to restart it on a change")
    policy = watch_policy(interval, wait, kill_timeout, sig) if watch else None
    grace = parse_duration(kill_timeout, "--kill-timeout")
    retry = parse_duration(retry_for, "--retry-for")
    logs.configure(log_level)
    store = open_store(flags, read_only=True)
    try:
        load = EnvLoader(store, flags["prefix"], app, who, secret_keyring, prefix_env,
                         allow_env)
        try:
            code = run_program(command, base_env, load, policy, grace, retry)
        except ProgramError as exc:
            click.echo(f"registrator: error: {exc}", err=True)
            code = exc.code
    finally:
        store.close()
    sys.exit(code)
