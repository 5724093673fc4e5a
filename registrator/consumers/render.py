"""`registrator render`: templates kept in step with the registry. Renders at start, then
after changes (debounced per template); an unchanged output does nothing; a changed one is
staged, checked, swapped in, and reloaded, with one reload per command for a group of
templates that changed together. A template error, a failed check or a failed reload leaves
the last good file, logs one line, and is retried at the next change: the process keeps
running, whatever the registry or the templates contain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog

from registrator.consumers import templates
from registrator.consumers.debounce import Debouncer
from registrator.consumers.files import DEFAULT_TIMEOUT, Outcome, current_text, install
from registrator.consumers.follow import Follower
from registrator.consumers.jobs import Job
from registrator.errors import ConfigError
from registrator.stores.base import Change

if TYPE_CHECKING:
    import jinja2

log = structlog.get_logger("registrator.render")
Reloader = Callable[[Job], Outcome]  # runs the job's reload (command, container signal)


class ConfigLookup(Protocol):
    """`config(app, key, default)` in templates (SPEC §9); `decrypted` says a secret was
    read, so the file is written 0600."""

    decrypted: bool

    def __call__(self, app: str, key: str, default: str | None = None) -> str | None: ...


ConfigFactory = Callable[[], ConfigLookup]  # a fresh one per render


@dataclass(slots=True)
class Template:
    job: Job
    env: jinja2.Environment = field(init=False)
    debouncer: Debouncer = field(init=False)
    ok: bool = False  # the last render, check, swap and reload all succeeded
    reload_pending: bool = False  # swapped in, but its reload failed: retry at the next change

    def __post_init__(self) -> None:
        self.env = templates.environment(self.job.src)
        self.debouncer = Debouncer(*self.job.wait)


def render_all(items: list[Template], snap: templates.Snapshot, reload: Reloader,
               timeout: float = DEFAULT_TIMEOUT, config: ConfigFactory | None = None) -> bool:
    """One cycle over `items`; True when every one ended well (changed or not)."""
    reloads: dict[str, list[Template]] = {}
    for item in items:
        changed = _render_one(item, snap, timeout, config() if config is not None else None)
        key = item.job.reload_key
        if key and (changed or (item.ok and item.reload_pending)):
            reloads.setdefault(key, []).append(item)
    for key, group in reloads.items():
        outcome = reload(group[0].job)
        names = [t.job.dest for t in group]
        if outcome.ok:
            log.info("reloaded", reload=key, dests=names)
        else:
            log.error("reload failed; retrying at the next change", reload=key, dests=names,
                      reason=outcome.detail)
        for item in group:
            item.reload_pending = not outcome.ok
            item.ok = outcome.ok
    return all(item.ok for item in items)


def _render_one(item: Template, snap: templates.Snapshot, timeout: float,
                config: ConfigLookup | None) -> bool:
    """Render and install one template; True when DEST got new content."""
    job = item.job
    try:
        text = templates.render(item.env, job.src, templates.context(snap, config=config))
    except templates.TemplateFailedError as exc:
        failed: templates.TemplateFailedError | templates.KeepPreviousError = exc
    except templates.KeepPreviousError as exc:
        failed = exc
    else:
        return _install(item, text, timeout, secret=config is not None and config.decrypted)
    item.ok = False
    if isinstance(failed, templates.TemplateFailedError):
        log.error("template failed; keeping the last good file", template=failed.template,
                  line=failed.line, reason=failed.reason, dest=job.dest)
    else:
        log.warning("render skipped; keeping the last good file", template=job.src,
                    dest=job.dest, reason=str(failed))
    return False


def _install(item: Template, text: str, timeout: float, *, secret: bool) -> bool:
    job = item.job
    if text == current_text(job.dest):
        item.ok = True  # a pending reload still decides, in render_all
        return False
    outcome = install(text, job.dest, check_cmd=job.check_cmd, in_place=job.in_place,
                      mode=job.mode, timeout=timeout, secret=secret, owner=job.owner,
                      group=job.group)
    if not outcome.ok:
        item.ok = False
        log.error("not installed; keeping the last good file", template=job.src,
                  dest=job.dest, reason=outcome.detail)
        return False
    item.ok = True
    log.info("rendered", template=job.src, dest=job.dest, bytes=len(text.encode()))
    return True


class RenderLoop:
    """Follows the registry on a thread of its own; renders on the caller's thread."""

    def __init__(  # noqa: PLR0913 - collaborators and settings, each needed
            self, follower: Follower, load_jobs: Callable[[], list[Job]], reload: Reloader,
                 *, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic,
                 config: ConfigFactory | None = None) -> None:
        self.follower = follower
        self.config = config
        self.load_jobs = load_jobs
        self.reload = reload
        self.timeout = timeout
        self.clock = clock
        self.items = [Template(j) for j in load_jobs()]
        self.stop_event = threading.Event()
        self.reread = threading.Event()  # set by SIGHUP: read the config file again
        self._cond = threading.Condition()
        self.cycles = 0

    def healthy(self) -> str | None:
        """None when /healthz should say ok, otherwise why not."""
        if not self.follower.watching.is_set():
            return "not watching the registry"
        failing = [t.job.dest for t in self.items if not t.ok]
        return f"last render failed: {', '.join(failing)}" if failing else None

    def stop(self) -> None:
        self.stop_event.set()
        self.follower.stop()
        with self._cond:
            self._cond.notify_all()

    def notify(self, changes: list[Change], first: bool) -> None:
        del changes  # any change may matter to any template: each renders and compares
        with self._cond:
            now = self.clock()
            for item in self.items:
                if first:
                    item.debouncer.now_due()
                else:
                    item.debouncer.change(now)
            self._cond.notify_all()

    def _start_watch(self) -> threading.Thread:
        thread = threading.Thread(target=self.follower.run, args=(self.notify,),
                                  name="registry-watch", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        thread = self._start_watch()
        try:
            while not self.stop_event.is_set():
                if not thread.is_alive() and not self.stop_event.is_set():
                    # Store errors are handled inside; this is anything else (a bug): the
                    # watch resumes from the last revision it saw instead of going silent.
                    log.error("the registry watch ended unexpectedly; restarting it")
                    thread = self._start_watch()
                if self.reread.is_set():
                    self._reread()
                due = self._wait_due()
                if due:
                    render_all(due, self.snapshot(), self.reload, self.timeout, self.config)
                    self.cycles += 1
        finally:
            self.follower.stop()
            thread.join(10)

    def snapshot(self) -> templates.Snapshot:
        with self.follower.lock:
            registry = self.follower.registry
            return templates.Snapshot(registry.services(), registry.hosts())

    def _wait_due(self) -> list[Template]:
        with self._cond:
            now = self.clock()
            due = [t for t in self.items if t.debouncer.due(now)]
            if not due:
                deadlines = [d for t in self.items if (d := t.debouncer.deadline()) is not None]
                wait = min(deadlines) - now if deadlines else 0.5
                # Short waits at most: SIGHUP and stop are looked at between them.
                self._cond.wait(min(max(wait, 0.0), 0.5))
                return []
            for item in due:
                item.debouncer.done()
            return due

    def _reread(self) -> None:
        self.reread.clear()
        try:
            jobs = self.load_jobs()
        except ConfigError as exc:
            problem = str(exc)
        else:
            self._use(jobs)
            return
        log.error("config not re-read; keeping the templates in use", reason=problem)

    def _use(self, jobs: list[Job]) -> None:
        with self._cond:
            self.items = [Template(j) for j in jobs]
            if self.follower.revision:
                for item in self.items:
                    item.debouncer.now_due()
        log.info("config re-read", templates=[j.src for j in jobs])
