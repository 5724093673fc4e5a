"""What the `registrator config ...` commands share: one-line errors, and the host whose
overrides apply."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from registrator.configvalues.names import check_host
from registrator.configvalues.resolve import this_host
from registrator.errors import ConfigError, RegistratorError

F = TypeVar("F", bound=Callable[..., Any])


def host_option(func: F) -> F:
    # REGISTRATOR_HOSTNAME as well: where `run` is told its host name that way, `config`
    # resolves for the same host without being told again.
    return click.option(
        "--host", default=None, envvar=["REGISTRATOR_HOST", "REGISTRATOR_HOSTNAME"],
        show_envvar=True, help="Host whose overrides apply [default: this host, as `run` "
        "names it].")(func)


def one_line_errors(func: F) -> F:
    """Store, keyring and value problems: exit 1 with one line. ConfigError (bad names or
    flags) goes on to main(), which exits 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError:
            raise
        except RegistratorError as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise click.ClickException(message) from None

    return wrapper  # type: ignore[return-value]


def resolved_host(host: str | None) -> str:
    return check_host((host or this_host()).strip())
