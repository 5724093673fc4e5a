"""`registrator serve` (SPEC §11): its flags. Loaded only when named (cli.py's LazyGroup), so
`run` and the other commands never import the web stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from registrator.cli import DURATION, ENV, _consumer, _option, store_options
from registrator.durations import seconds
from registrator.errors import ConfigError
from registrator.serve.run import ServeSettings, serve
from registrator.settings import parse_metrics_addr


def _address(text: str | None, flag: str) -> tuple[str, int] | None:
    if not text:
        return None
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ConfigError(f"{flag} {text!r} must look like HOST:PORT (e.g. 127.0.0.1:8500)")
    return host.strip("[]"), int(port)


def _duration(text: str, flag: str, *, zero: bool) -> float:
    value = seconds(text)
    if value is None or (value == 0 and not zero):
        raise ConfigError(f"{flag} {text!r}: expected a duration such as 10s")
    return value


def _readable(path: str | None, flag: str) -> str | None:
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{flag} {path!r}: no such file")
    return path


def settings(flags: dict[str, Any]) -> ServeSettings:
    """The serve flags checked: bad ones are one line and exit 2, before the store is opened."""
    http, dns = _address(flags["http"], "--http"), _address(flags["dns"], "--dns")
    if http is None and dns is None:
        raise ConfigError("serve needs --http HOST:PORT and/or --dns HOST:PORT")
    cert = _readable(flags["http_cert"], "--http-cert")
    key = _readable(flags["http_key"], "--http-key")
    if (cert is None) != (key is None):
        raise ConfigError("--http-cert and --http-key go together")
    domain = flags["domain"].strip().lower()
    if not domain.endswith("."):
        domain += "."
    if domain == "." or ".." in domain:
        raise ConfigError(f"--domain {flags['domain']!r}: expected a name such as registrator.")
    return ServeSettings(
        http=http, dns=dns, domain=domain,
        dns_ttl=_duration(flags["dns_ttl"], "--dns-ttl", zero=True),
        http_cert=cert, http_key=key, show_config=flags["show_config"],
        stale_after=_duration(flags["stale_after"], "--stale-after", zero=False),
        metrics_addr=parse_metrics_addr(flags["metrics_addr"]))


@click.command(name="serve", context_settings=ENV)
@store_options
@_option("--http", default=None, help="HOST:PORT for the web view, the JSON API, /metrics "
         "and /healthz (e.g. 127.0.0.1:8500).")
@_option("--dns", default=None, help="HOST:PORT for DNS over UDP and TCP (e.g. 127.0.0.1:8600).")
@_option("--domain", default="registrator.", help="DNS domain served.")
@_option("--dns-ttl", default="0s", type=DURATION, help="TTL of DNS answers.")
@_option("--http-cert", default=None, help="TLS certificate (PEM) for --http.")
@_option("--http-key", default=None, help="TLS key (PEM) for --http.")
@_option("--show-config", is_flag=True,
         help="Also serve configuration values (encrypted ones stay hidden).")
@_option("--stale-after", default="10s", type=DURATION,
         help="/healthz turns 503 once the store has been unreachable this long.")
@_option("--metrics-addr", default=None, help="host:port for /metrics and /healthz (besides "
         "--http's own).")
@_option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve_command(**flags: Any) -> None:
    """Serve the registry over HTTP (API, web view, Prometheus SD) and DNS; read-only."""
    checked = settings(flags)
    with _consumer(flags) as (store, keys):
        serve(store, keys, checked)
