"""`registrator render`: templates kept in step with the registry. Renders at start, then
after changes (debounced per template); an unchanged output does nothing; a changed one is
staged, checked, swapped in, and reloaded, with one reload per command for a group of
templates that changed together. A template error, a failed check, a failed swap or a failed
reload leaves the last good file, logs one line, and is retried at the next change; a failed
swap or reload also on a timer with backoff, and a failed reload is remembered beside DEST
(reload_state) until one succeeds. The process keeps running, whatever the registry, the
templates or DEST's file system do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog

from registrator.consumers import reload_state, templates
from registrator.consumers.debounce import Debouncer
from registrator.consumers.files import (
    DEFAULT_TIMEOUT,
    Outcome,
    holds,
    install,
    settle_mode,
)
from registrator.consumers.follow import Follower
from registrator.consumers.jobs import Job
from registrator.consumers.masking import mask
from registrator.errors import ConfigError
from registrator.stores.base import Change

if TYPE_CHECKING:
    import jinja2

log = structlog.get_logger("registrator.render")
# Runs the job's reload (command, container signal); the strings are masked in its output.
Reloader = Callable[[Job, Collection[str]], Outcome]
MAX_BACKOFF = 60.0


class ConfigLookup(Protocol):
    """`config(app, key, default)` in templates (SPEC §9); `decrypted` says a secret was
    read, so the file is written 0600."""

    @property
    def decrypted(self) -> bool: ...

    def __call__(self, app: str, key: str, default: str | None = None) -> str | None: ...


ConfigFactory = Callable[[], ConfigLookup]  # a fresh one per render


class Recording:
    """A render's `config()`, remembering every value it handed to the template: those are
    in the file, so they are masked wherever a check or reload quotes it."""

    def __init__(self, inner: ConfigLookup) -> None:
        self.inner = inner
        self.values: set[str] = set()

    @property
    def decrypted(self) -> bool:
        return self.inner.decrypted

    def __call__(self, app: str, key: str, default: str | None = None) -> str | None:
        value = self.inner(app, key, default)
        if isinstance(value, str) and value:
            self.values.add(value)
        return value


def backoff(attempts: int) -> float:
    """1 s, 2 s, 4 s ... at most MAX_BACKOFF: the delay before the retry after `attempts`
    failures in a row."""
    return min(MAX_BACKOFF, 2.0 ** max(attempts - 1, 0))


@dataclass(slots=True)
class Template:
    job: Job
    env: jinja2.Environment = field(init=False)
    debouncer: Debouncer = field(init=False)
    rendered_ok: bool = False  # the last render, check and swap succeeded (or nothing changed)
    install_failed: bool = False  # rendered, but could not be put in place: retried on a timer
    reload_pending: bool = False  # swapped in, not reloaded yet (kept beside DEST too)
    secrets: frozenset[str] = frozenset()  # config values of the last render: masked in logs
    attempts: int = 0  # failures in a row that a timer retries
    retry_at: float | None = None

    def __post_init__(self) -> None:
        self.env = templates.environment(self.job.src)
        self.debouncer = Debouncer(*self.job.wait)
        # A reload owed by an earlier run, or before a SIGHUP, is still owed.
        self.reload_pending = bool(self.job.reload_key) and reload_state.owed(self.job.dest)

    @property
    def ok(self) -> bool:
        """What /healthz reports: rendered, in place and reloaded."""
        return self.rendered_ok and not self.reload_pending

    def due_for_retry(self, now: float) -> bool:
        return self.retry_at is not None and now >= self.retry_at


def render_all(  # noqa: PLR0913 - what one cycle needs
        items: list[Template], snap: templates.Snapshot, reload: Reloader,
        timeout: float = DEFAULT_TIMEOUT, config: ConfigFactory | None = None,
        clock: Callable[[], float] = time.monotonic) -> bool:
    """One cycle over `items`; True when every one ended well (changed or not)."""
    now = clock()
    changed = [item for item in items
               if _render_one(item, snap, timeout, config() if config is not None else None)]
    reloads = _reload_groups(items, changed, now)
    for key, group in reloads.items():
        secrets = frozenset().union(*(t.secrets for t in group))
        outcome = reload(group[0].job, secrets)
        names = [t.job.dest for t in group]
        for item in group:
            item.reload_pending = not outcome.ok
            if outcome.ok:
                reload_state.settle(item.job.dest)
        if outcome.ok:
            log.info("reloaded", reload=mask(key, secrets), dests=names)
        else:
            log.error("reload failed; retrying with backoff", reload=mask(key, secrets),
                      dests=names, reason=outcome.detail,
                      retry_in=backoff(max(t.attempts for t in group) + 1))
    _schedule_retries(items, [item for group in reloads.values() for item in group], now)
    return all(item.ok for item in items)


def _reload_groups(items: list[Template], changed: list[Template], now: float,
                   ) -> dict[str, list[Template]]:
    """The templates to reload, by reload command: new content reloads now; a reload owed
    from before waits for its retry time, so a busy registry (changes that leave this file
    alone) does not re-run a failing reload at each change. DEST holds the file the debt is
    about even when this render failed. One reload pays every debt of its command."""
    new = {id(item) for item in changed}  # by identity: Templates compare by value
    keys = {item.job.reload_key for item in items if item.job.reload_key and (
        id(item) in new or (item.reload_pending and
                            (item.retry_at is None or now >= item.retry_at)))}
    reloads: dict[str, list[Template]] = {}
    for item in items:
        if item.job.reload_key in keys:
            reloads.setdefault(item.job.reload_key, []).append(item)
    return reloads


def _schedule_retries(items: list[Template], tried: list[Template], now: float) -> None:
    tried_ids = {id(item) for item in tried}
    for item in items:
        if item.install_failed or (item.reload_pending and id(item) in tried_ids):
            item.attempts += 1
            item.retry_at = now + backoff(item.attempts)
        elif not item.reload_pending:
            item.attempts, item.retry_at = 0, None
        # else: an owed reload not tried this time keeps its retry time and count


def _render_one(item: Template, snap: templates.Snapshot, timeout: float,
                config: ConfigLookup | None) -> bool:
    """Render and install one template; True when DEST got new content."""
    job = item.job
    recording = Recording(config) if config is not None else None
    try:
        text = templates.render(item.env, job.src,
                                templates.context(snap, config=recording))
    except templates.TemplateFailedError as exc:
        failed: templates.TemplateFailedError | templates.KeepPreviousError = exc
    except templates.KeepPreviousError as exc:
        failed = exc
    else:
        item.secrets = frozenset(recording.values) if recording is not None else frozenset()
        data = text.encode("utf-8")
        del text  # one copy of a big file at a time, not the text and its bytes both
        return _install(item, data, timeout, secret=recording is not None and
                        recording.decrypted)
    item.rendered_ok = item.install_failed = False
    values = recording.values if recording is not None else ()
    if isinstance(failed, templates.TemplateFailedError):
        log.error("template failed; keeping the last good file", template=failed.template,
                  line=failed.line, reason=mask(failed.reason, values), dest=job.dest)
    else:  # require(name) quotes the name, which may be a config() value
        log.warning("render skipped; keeping the last good file", template=job.src,
                    dest=job.dest, reason=mask(str(failed), values))
    return False


def _install(item: Template, data: bytes, timeout: float, *, secret: bool) -> bool:
    job = item.job
    item.install_failed = False
    if holds(job.dest, data):
        problem = settle_mode(job.dest, job.mode, secret)
        if problem is not None:
            item.rendered_ok, item.install_failed = False, True
            log.error("not installed; keeping the last good file", template=job.src,
                      dest=job.dest, reason=problem)
            return False
        item.rendered_ok = True  # a pending reload still decides, in render_all
        return False
    owed_before = item.reload_pending
    # Owed before the swap, so a crash between swap and reload still owes it.
    not_saved = (reload_state.owe(job.dest) if job.reload_key and not owed_before
                 else None)
    outcome = install(data, job.dest, check_cmd=job.check_cmd, in_place=job.in_place,
                      mode=job.mode, timeout=timeout, secret=secret, owner=job.owner,
                      group=job.group, secrets=item.secrets)
    if not outcome.ok:
        if job.reload_key and not owed_before:
            reload_state.settle(job.dest)
        item.rendered_ok, item.install_failed = False, True
        log.error("not installed; keeping the last good file", template=job.src,
                  dest=job.dest, reason=outcome.detail)
        return False
    item.rendered_ok = True
    log.info("rendered", template=job.src, dest=job.dest, bytes=len(data))
    if not_saved is not None:  # only worth a line once the file is in: the debt is real
        log.warning("reload debt not saved beside DEST; kept in memory only", dest=job.dest,
                    reason=not_saved)
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
            return self.follower.problem or "not watching the registry"
        failing = [t.job.dest for t in self.items if not t.rendered_ok]
        owed = [t.job.dest for t in self.items if t.reload_pending]
        problems = ([f"last render failed: {', '.join(failing)}"] if failing else []) + (
            [f"reload failed, retrying: {', '.join(owed)}"] if owed else [])
        return "; ".join(problems) or None

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
                    render_all(due, self.snapshot(), self.reload, self.timeout, self.config,
                               self.clock)
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
            # Due: a change waited out, or a failed install or reload whose retry time came.
            due = [t for t in self.items if t.debouncer.due(now) or t.due_for_retry(now)]
            if not due:
                deadlines = [d for t in self.items if (d := t.debouncer.deadline()) is not None]
                deadlines += [t.retry_at for t in self.items if t.retry_at is not None]
                wait = min(deadlines) - now if deadlines else 0.5
                # Short waits at most: SIGHUP and stop are looked at between them.
                self._cond.wait(min(max(wait, 0.0), 0.5))
                return []
            for item in due:
                item.debouncer.done()  # retry_at stays: render_all decides with it
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
