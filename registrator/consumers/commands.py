"""The bodies of `ls`, `watch` and `render`; cli.py only declares their flags. Output goes to
stdout, logs (warnings about skipped entries, render results) to stderr."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click
import structlog
from prometheus_client import CollectorRegistry, Gauge

from registrator.consumers import ls as ls_mod
from registrator.consumers import watch as watch_mod
from registrator.consumers.follow import Follower
from registrator.consumers.jobs import Job, job, load_config
from registrator.consumers.process import Outcome, run_command, stop_all
from registrator.consumers.render import (
    ConfigFactory,
    Reloader,
    RenderLoop,
    Template,
    render_all,
)
from registrator.consumers.templates import Snapshot
from registrator.durations import seconds
from registrator.errors import ConfigError, StoreError, TransientError
from registrator.keys import KeySpace
from registrator.metrics_server import MetricsServer
from registrator.settings import parse_metrics_addr
from registrator.stores.base import Change, Store

if TYPE_CHECKING:
    from registrator.metrics import Metrics

log = structlog.get_logger("registrator.consumers")


def unreachable(exc: Exception) -> NoReturn:
    click.echo(f"registrator: error: {exc}", err=True)
    sys.exit(1)


def ls(store: Store, keys: KeySpace, name: str | None, host: str | None,  # noqa: PLR0913
       as_json: bool, hosts: bool) -> None:
    try:
        registry = ls_mod.read_registry(store, keys)
    except (TransientError, StoreError) as exc:
        unreachable(exc)
    if hosts:
        records = [h for h in registry.hosts() if host is None or h.get("hostname") == host]
        click.echo(ls_mod.as_json(records) if as_json else ls_mod.hosts_table(records))
        return
    entries = ls_mod.select(registry.entries(), name, host)
    click.echo(ls_mod.as_json(entries) if as_json else ls_mod.table(entries))


def watch(store: Store, keys: KeySpace, name: str | None, as_json: bool) -> None:
    follower = Follower(store, keys)
    _stop_on_signals(follower.stop)

    def emit(changes: list[Change], first: bool) -> None:
        if first:
            return  # "from now on": the state at start is what `ls` is for
        for change in changes:
            if watch_mod.wanted(keys, change, name):
                text = watch_mod.line(change, follower.registry, as_json)
                if text is not None:
                    click.echo(text)

    try:
        follower.run(emit)
    except BrokenPipeError:
        # The reader went away (`watch | head -1`): done. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def render(store: Store, keys: KeySpace, flags: dict[str, Any]) -> None:
    load_jobs = _job_loader(flags)
    jobs = load_jobs()  # bad flags or config: exit 2 before anything else happens
    timeout = _seconds(flags["cmd_timeout"], "--cmd-timeout")
    reload = _reloader(timeout)
    config = _config_factory(store, keys, flags)
    if flags["once"]:
        _stop_on_signals(_stop_once)
        sys.exit(_once(store, keys, jobs, reload, timeout, config))
    loop = RenderLoop(Follower(store, keys), load_jobs, reload, timeout=timeout, config=config)

    def stop() -> None:
        loop.stop()
        stop_all()  # a check or reload running now is ended too, not waited for

    _stop_on_signals(stop)
    # SIGHUP: read the config file (or the flags' one template) again and render at once.
    signal.signal(signal.SIGHUP, lambda *_: loop.reread.set())
    server = _metrics_server(flags["metrics_addr"], loop)
    try:
        loop.run()
    finally:
        if server is not None:
            server.stop()


def _stop_once() -> None:
    """SIGTERM/SIGINT to `render --once`: a check or reload running then is ended and the
    run finishes at once, with exit 1; otherwise exit 1 right away, as before."""
    if not stop_all():
        sys.exit(1)


def _config_factory(store: Store, keys: KeySpace, flags: dict[str, Any]) -> ConfigFactory:
    """`config(app, key, default)` resolved for --hostname (SPEC §9): read from the store at
    render time; a change under the prefix re-renders like any other."""
    from registrator.configvalues.values import TemplateConfig  # noqa: PLC0415 - gnupg on use

    host = (flags.get("hostname") or socket.gethostname()).strip()  # as `run` names it
    keyring = flags.get("secret_keyring")
    return lambda: TemplateConfig(store, keys.prefix, host, keyring)


def _once(  # noqa: PLR0913 - what one run needs
        store: Store, keys: KeySpace, jobs: list[Job], reload: Reloader,
        timeout: float, config: ConfigFactory) -> int:
    try:
        registry = ls_mod.read_registry(store, keys)
    except (TransientError, StoreError) as exc:
        problem = str(exc)
    else:
        items = [Template(j) for j in jobs]
        snap = Snapshot(registry.services(), registry.hosts())
        return 0 if render_all(items, snap, reload, timeout, config) else 1
    log.error("store unreachable; nothing rendered", reason=problem)
    return 1


def _job_loader(flags: dict[str, Any]) -> Callable[[], list[Job]]:
    if flags["config"]:
        if flags["template"] or flags["dest"]:
            raise ConfigError("--config and --template/--dest exclude each other")
        return lambda: load_config(flags["config"])
    if not (flags["template"] and flags["dest"]):
        raise ConfigError("render needs --template and --dest, or --config FILE.toml")
    one = job(flags["template"], flags["dest"], check_cmd=flags["check_cmd"],
              reload_cmd=flags["reload_cmd"], wait=flags["wait"], in_place=flags["in_place"],
              mode=flags["mode"], reload_container=flags["reload_container"],
              reload_signal=flags["reload_signal"], owner=flags.get("owner"),
              group=flags.get("group"))
    return lambda: [one]


def _reloader(timeout: float) -> Reloader:
    def reload(job: Job, secrets: Collection[str]) -> Outcome:
        outcome = (run_command(job.reload_cmd, timeout, secrets) if job.reload_cmd
                   else Outcome(ok=True))
        if outcome.ok and job.reload_container:
            # The Docker SDK costs ~19 MB of memory: only a render that signals loads it.
            from registrator.consumers.signal_containers import signal_containers  # noqa: PLC0415

            outcome = signal_containers(job.reload_container, job.reload_signal, timeout)
        return outcome

    return reload


def _seconds(text: str, flag: str) -> float:
    value = seconds(text)
    if value is None or value <= 0:
        raise ConfigError(f"{flag} {text!r}: expected a duration such as 30s")
    return value


def _stop_on_signals(stop: Callable[[], None]) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop())


def _metrics_server(addr: str | None, loop: RenderLoop) -> Any:
    address = parse_metrics_addr(addr)
    if address is None:
        return None
    registry = CollectorRegistry(auto_describe=True)
    Gauge("registrator_render_watching", "1 while the registry watch is open",
          registry=registry).set_function(lambda: float(loop.follower.watching.is_set()))
    Gauge("registrator_render_templates_failing", "Templates whose last render failed",
          registry=registry).set_function(lambda: float(sum(not t.ok for t in loop.items)))
    Gauge("registrator_render_cycles", "Render cycles since start",
          registry=registry).set_function(lambda: float(loop.cycles))

    class _Registry:  # MetricsServer reads only `.registry` of its metrics object
        pass

    holder = _Registry()
    holder.registry = registry  # type: ignore[attr-defined]
    server = MetricsServer(cast("Metrics", holder), address, loop.healthy)
    server.start()
    log.info("serving /metrics and /healthz", port=server.port)
    return server
