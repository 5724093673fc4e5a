"""What the `registrator config ...` commands share: one-line errors, and the host whose
overrides apply."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click

from registrator.configvalues.names import check_host
from registrator.configvalues.resolve import this_host
from registrator.errors import ConfigError, RegistratorError

F = TypeVar("F", bound=Callable[..., Any])


def host_option(func: F) -> F:
    # One rule for every command (issue 21): REGISTRATOR_HOSTNAME names this host, as `run`
    # and `render` read it, so `config` resolves for the host `run` writes records for.
    return click.option(
        "--host", default=None, envvar="REGISTRATOR_HOSTNAME", show_envvar=True,
        allow_from_autoenv=False,  # click would fall back to REGISTRATOR_HOST
        help="Host whose overrides apply [default: this host, as `run` names it].")(func)


def _terminated(sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + sig)


def one_line_errors(func: F) -> F:
    """Store, keyring and value problems: exit 1 with one line. ConfigError (bad names or
    flags) goes on to main(), which exits 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # SIGTERM unwinds like an error (exit 143): a throwaway GnuPG home holds the secret
        # key and an agent while a value is decrypted; both go on the way out.
        previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            return func(*args, **kwargs)
        except ConfigError:
            raise
        except RegistratorError as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise click.ClickException(message) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def resolved_host(host: str | None) -> str:
    stray = os.environ.get("REGISTRATOR_HOST")
    if stray and host is None and stray.strip() != this_host():
        # Read by earlier versions before REGISTRATOR_HOSTNAME: say why it has no effect.
        sys.stderr.write("registrator: warning: REGISTRATOR_HOST is not read; "
                         "REGISTRATOR_HOSTNAME names this host for every command\n")
    return check_host((host or this_host()).strip())


class ProgramCommand(click.Command):
    """A command whose last arguments are a program with options of its own (`config exec
    APP PROGRAM ARGS...`): option parsing stops at the program's name, as `env`, `sudo` and
    `nice` do, so `exec app printenv X --host h7` leaves `--host h7` to printenv (issue 21).
    `--` before the program still works."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.split_program(args))

    def split_program(self, args: list[str]) -> list[str]:
        """`args` with `--` put before the program's first word (the second positional)."""
        takes_value = {name for param in self.params if isinstance(param, click.Option)
                       and not param.is_flag and not param.count
                       for name in (*param.opts, *param.secondary_opts)}
        positionals = 0
        skip = False
        for index, arg in enumerate(args):
            if skip:
                skip = False
                continue
            if arg == "--":
                return args
            if arg.startswith("-") and arg != "-":
                skip = arg in takes_value  # `--host h7`; `--host=h7` is one word
                continue
            positionals += 1
            if positionals == 2:
                return [*args[:index], "--", *args[index:]]
        return args
