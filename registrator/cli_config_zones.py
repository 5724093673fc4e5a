"""`registrator config grant|revoke` (SPEC §9, access zones): etcd roles scoped to one app's
configuration root. A zone is only as good as etcd's auth: against an etcd with auth off,
grant says the zone enforces nothing and exits 1 unless --allow-no-auth (issue 21)."""

from __future__ import annotations

from typing import Any

import click

from registrator.cli import ENV, open_store, store_options
from registrator.cli_config_common import one_line_errors
from registrator.configvalues.names import ConfigLayout
from registrator.errors import ConfigError, StoreError
from registrator.stores.base import Store

_NO_AUTH = ("etcd has auth disabled: the zone enforces nothing until auth is enabled "
            "(`etcdctl auth enable`)")


def _etcd(store: Store) -> Any:
    # Imported here: `registrator --help` should not import grpc.
    from registrator.stores.etcd import EtcdStore  # noqa: PLC0415

    if not isinstance(store, EtcdStore):
        raise ConfigError("config grant and revoke need an etcd store (etcd roles)")
    return store


def _names(app: str, user: str | None, role: str | None) -> tuple[str, str | None]:
    from registrator.stores.etcd_roles import check_name  # noqa: PLC0415

    if user is not None:
        check_name("--user", user)
    return check_name("--role", role if role is not None else f"config-{app}"), user


@click.command(context_settings=ENV)
@click.argument("app")
@click.option("--user", required=True, allow_from_autoenv=False,
              help="etcd user that gets the role.")
@click.option("--write", is_flag=True, allow_from_autoenv=False,
              help="Also let the user write the app's values.")
@click.option("--role", default=None, allow_from_autoenv=False,
              help="Role name [default: config-<app>]; never an existing role grant did not "
              "make for APP, never root.")
@click.option("--allow-no-auth", is_flag=True, allow_from_autoenv=False,
              help="Grant even though etcd has auth disabled (the zone enforces nothing yet).")
@store_options
@one_line_errors
def grant(app: str, user: str, write: bool, role: str | None,
          allow_no_auth: bool, **flags: Any) -> None:
    """Access zone: give etcd USER a role that can read (--write: and write) APP's
    configuration and nothing else. Run it as an etcd user that may manage auth (root).

    Example: registrator config grant shop --user shop-app"""
    from registrator.stores.etcd_roles import auth_enabled, grant_prefix  # noqa: PLC0415

    root = ConfigLayout.under(flags["prefix"]).app_root(app)
    name, _ = _names(app, user, role)
    store = open_store(flags)
    try:
        etcd = _etcd(store)
        if not auth_enabled(etcd):
            if not allow_no_auth:
                raise StoreError(f"{_NO_AUTH}; --allow-no-auth grants anyway")
            click.echo(f"registrator: warning: {_NO_AUTH}", err=True)
        grant_prefix(etcd, name, root, user, write, app)
    finally:
        store.close()
    access = "read-write" if write else "read"
    click.echo(f"user {user!r} has role {name!r}: {access} on {root}")


@click.command(context_settings=ENV)
@click.argument("app")
@click.option("--user", default=None, allow_from_autoenv=False,
              help="Take the role from this user only [default: delete the role].")
@click.option("--role", default=None, allow_from_autoenv=False,
              help="Role name [default: config-<app>]; only a role grant made for APP.")
@store_options
@one_line_errors
def revoke(app: str, user: str | None, role: str | None, **flags: Any) -> None:
    """Take APP's access zone back: from USER, or (without --user) delete the role grant
    made, from every user.

    Example: registrator config revoke shop --user shop-app"""
    from registrator.stores.etcd_roles import revoke_prefix  # noqa: PLC0415

    root = ConfigLayout.under(flags["prefix"]).app_root(app)
    name, who = _names(app, user, role)
    store = open_store(flags)
    try:
        found = revoke_prefix(_etcd(store), name, root, who, app)
    finally:
        store.close()
    if not found:
        raise click.ClickException(f"role {name!r} does not exist")
    click.echo(f"role {name!r} taken from user {who!r}" if who else f"role {name!r} deleted")
