"""The daemon's threads and lifecycle (SPEC §5).

- events thread: Docker event stream -> WorkQueue hints; reconnects, then asks for a full sync.
- worker thread: the only writer; takes hints, runs the Reconciler, owns lease (re)creation.
- keepalive thread: refreshes the host's one lease every ttl/3; reports a lost lease.
- main thread: waits for SIGTERM/SIGINT (via `stop`), then shuts down in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from registrator import __version__
from registrator.docker_source import DockerSource, EventStream
from registrator.drain import Drains
from registrator.errors import (
    ConfigError,
    DockerUnavailableError,
    LeaseLostError,
    RegistratorError,
    TakenOverError,
)
from registrator.health import HealthMonitor
from registrator.inspector import Inspector
from registrator.keys import KeySpace
from registrator.layouts import Renderer
from registrator.metrics import Metrics
from registrator.reconcile import Reconciler, now_iso
from registrator.retrying import Retrier, Stopped
from registrator.settings import Config
from registrator.stores.base import Store
from registrator.takeover import Instance, previous_lease
from registrator.workqueue import Work, WorkQueue

if TYPE_CHECKING:
    from registrator.metrics_server import MetricsServer

log = structlog.get_logger("registrator.daemon")
_JOIN_TIMEOUT = 10.0
_TICK = 1.0
_FROZEN_AFTER = 2.0  # oversleeping a tick by this much means the process was not running
# Store writes failing for longer than this make /healthz fail: short outages are ridden out.
WRITE_FAILURE_BOUND = 5.0
# Docker's event times are wall-clock: transit beyond this is a clock step, not latency.
_MAX_TRANSIT = 5.0


class Daemon:
    def __init__(self, config: Config, docker: DockerSource, store: Store,
                 stop: threading.Event | None = None) -> None:
        self.cfg = config
        self.docker = docker
        self.store = store
        self.stop = stop or threading.Event()
        self.queue = WorkQueue()
        self.keys = KeySpace(config.prefix)
        self.started_at = now_iso()
        self.health = HealthMonitor(on_change=self.queue.container)
        self.metrics = Metrics(enabled=config.metrics_addr is not None)
        self.inspector = Inspector(docker, later=self.queue.container)
        self.drains = Drains(wake=self.queue.container)
        self.reconciler = Reconciler(store, self.inspector, config.policy,
                                     Renderer(self.keys, config.layouts,
                                              config.skydns_domain), self._host_record,
                                     health=self.health, metrics=self.metrics,
                                     drains=self.drains)
        self.events_connected = False
        self.lease_alive = False
        self.store_problem: str | None = "not connected yet"
        self._server: MetricsServer | None = None
        self._old_lease: int | None = None
        self._stream: EventStream | None = None
        self._retry = Retrier(self.stop)
        self._instance: Instance | None = None
        self._write_failing_since: float | None = None
        self._last_write_error = ""
        self.thread_failure: str | None = None
        self.taken_over = False
        self.exit_code = 0
        self.metrics.write_failures.set_function(lambda: self._write_failures)
        self._write_failures = 0

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> int:
        policy = self.cfg.policy
        threads: list[threading.Thread] = []
        if self.cfg.metrics_addr is not None:
            from registrator.metrics_server import MetricsServer  # noqa: PLC0415 - on request

            try:
                self._server = MetricsServer(self.metrics, self.cfg.metrics_addr,
                                             self.health_problem)
            except OSError as exc:
                host, port = self.cfg.metrics_addr
                raise ConfigError(f"--metrics-addr {host}:{port}: {exc.strerror}") from None
        log.info("starting", version=__version__, hostname=policy.hostname,
                 address=policy.host_ip, prefix=self.cfg.prefix, ttl=self.cfg.ttl,
                 docker=self.docker.base_url, store=getattr(self.store, "describe", str)())
        if self._server is not None:
            self._server.start()
            log.info("serving /metrics and /healthz", port=self._server.port)
        try:
            self._retry.call("docker", self.docker.ping)
            self._retry.call("store", self.store.connect)
            self._instance = Instance.current(self._retry.call("docker", self.docker.engine_id))
            self._old_lease = self._retry.call("store", self._previous_lease)
            self.reconciler.adopt = self._old_lease
            # Subscribe before the first listing, so nothing falls between the two.
            stream = self._retry.call("docker", self.docker.events)
        except Stopped:
            return self._shutdown(threads)
        except TakenOverError:
            self._shutdown(threads)
            raise
        self.queue.full()
        self.health.start()
        for target, arg in ((self._events_loop, stream), (self._worker_loop, None),
                            (self._keepalive_loop, None)):
            thread = threading.Thread(target=self._guarded, args=(target, arg),
                                      name=target.__name__.strip("_"), daemon=True)
            thread.start()
            threads.append(thread)
        self.stop.wait()
        return self._shutdown(threads)

    def _previous_lease(self) -> int | None:
        assert self._instance is not None  # noqa: S101 - set just before
        where = f"--hostname {self.cfg.policy.hostname} and --prefix {self.cfg.prefix}"
        return previous_lease(self.store, self.keys.host(self.cfg.policy.hostname),
                              self._instance, self.docker, takeover=self.cfg.takeover,
                              stop=self.stop, where=where)

    def reload(self) -> None:
        """SIGHUP: nothing to re-read (flags are fixed at start); a full reconcile is the
        useful thing an operator can ask for by signal."""
        log.info("SIGHUP: full reconcile")
        self.queue.full()

    def _guarded(self, target: Callable[..., None], arg: object) -> None:
        """A thread that dies leaves a daemon that looks alive and does nothing: say so, fail
        /healthz and exit non-zero so a restart policy brings up a working one."""
        try:
            target(*((arg,) if arg is not None else ()))
        except Exception as exc:
            self.thread_failure = f"{threading.current_thread().name} thread died: {exc!r}"[:300]
            log.exception("thread died; exiting for a restart",
                          thread=threading.current_thread().name)
            self.exit_code = 1
            self.stop.set()

    def _shutdown(self, threads: list[threading.Thread]) -> int:
        log.info("stopping")
        self.stop.set()
        self.queue.close()
        self.health.stop()
        self.drains.close()
        if self._stream is not None:
            self._stream.close()
        for thread in threads:
            thread.join(_JOIN_TIMEOUT)
        lease = self.reconciler.lease
        if lease and self.exit_code and not self.taken_over:
            # Kept for the restart that takes over: no gap for running services.
            log.info("keeping entries for the next run; they expire with the lease",
                     ttl=self.cfg.ttl)
        elif lease and self.cfg.keep_on_exit:
            log.info("keeping entries (--keep-on-exit); they expire with the lease",
                     ttl=self.cfg.ttl)
        elif lease:
            try:
                self.store.revoke_lease(lease)
                log.info("lease revoked; this host's entries removed", lease=f"{lease:x}")
            except RegistratorError as exc:
                log.warning("could not revoke the lease; entries expire with it",
                            ttl=self.cfg.ttl, error=str(exc))
        if self._server is not None:
            self._server.stop()
        self.store.close()
        self.docker.close()
        self.inspector.close()
        log.info("stopped", exit_code=self.exit_code)
        return self.exit_code

    # -- threads --------------------------------------------------------------------------
    def _events_loop(self, stream: EventStream | None) -> None:
        while not self.stop.is_set():
            if stream is None:
                try:
                    stream = self._retry.call("docker", self.docker.events)
                except Stopped:
                    return
                log.info("docker event stream reconnected; full reconcile")
                self.metrics.reconnects.labels("docker").inc()
                self.queue.full()
            self._stream = stream
            self.events_connected = True
            try:
                for container_id, action, at, sig in stream:
                    log.debug("docker event", container=container_id[:12], action=action)
                    self.metrics.events.labels(action).inc()
                    if sig is not None:
                        self.drains.killed(container_id, sig, at)
                    self.inspector.hinted(container_id)
                    self.queue.container(container_id, _monotonic_at(at))
                if not self.stop.is_set():
                    log.warning("docker event stream ended")
            except DockerUnavailableError as exc:
                if not self.stop.is_set():
                    log.warning("docker event stream broken", error=str(exc))
            finally:
                self.events_connected = False
                stream.close()
                stream = None

    def _worker_loop(self) -> None:
        resync = self.cfg.resync
        next_resync = time.monotonic() + resync
        while not self.stop.is_set():
            timeout = max(0.0, next_resync - time.monotonic()) if resync > 0 else None
            work = self.queue.take(timeout)
            if self.stop.is_set() or self.queue.closed:
                return
            if work is None:
                work = Work(full=True)  # the resync timer
            if work.full:
                next_resync = time.monotonic() + resync
            self._process(work)

    def _keepalive_loop(self) -> None:
        """Refresh the lease every ttl/3 (every second while failing). Ticks at least every
        second, so a freeze of the process is noticed whatever the TTL."""
        interval = max(self.cfg.ttl / 3, 0.5)
        due = time.monotonic()
        failing = False
        while True:
            step = min(_TICK, max(0.0, due - time.monotonic()))
            before = time.monotonic()
            if self.stop.wait(step):
                return
            slept = time.monotonic() - before
            if slept > step + _FROZEN_AFTER:
                # The process was frozen (SIGSTOP, a paused VM): Docker drops events for a
                # subscriber that does not read, so what happened meanwhile may be unseen.
                log.warning("daemon was frozen; full reconcile", seconds=round(slept, 1))
                self.queue.full()
            lease = self.reconciler.lease
            if time.monotonic() < due or not lease:
                continue
            due = time.monotonic() + min(_TICK, interval)
            try:
                ttl = self.store.refresh_lease(lease)
            except LeaseLostError as exc:
                log.warning("lease lost; a new one will carry every entry", lease=f"{lease:x}",
                            reason=str(exc))
                self.lease_alive = False
                # /healthz says why until the new lease is granted (the worker clears it).
                self.store_problem = f"lease lost, writing every entry on a new one: {exc}"
                self.metrics.lease_reset()
                self.queue.lease_lost(lease)
                continue
            except RegistratorError as exc:
                if not failing:
                    log.warning("lease keepalive failed; retrying", error=str(exc))
                    self.metrics.store_errors.inc()
                failing = True
                self.store_problem = f"store unreachable: {exc}"
                continue
            if failing:
                log.info("lease keepalive working again", lease=f"{lease:x}")
                self.metrics.reconnects.labels("store").inc()
            failing = False
            self.store_problem = None
            self.lease_alive = True
            self.metrics.lease_refreshed(ttl)
            due = time.monotonic() + interval

    # -- work -----------------------------------------------------------------------------
    def _process(self, work: Work) -> None:
        def attempt() -> None:
            try:
                self._attempt(work)
            except TakenOverError:
                raise
            except LeaseLostError:
                work.lost_leases.add(self.reconciler.lease)
                raise
            except Exception as exc:
                work.full = True  # a half-applied change is repaired by a full reconcile
                if not isinstance(exc, DockerUnavailableError):
                    self.metrics.store_errors.inc()
                    self._write_failed(exc)
                raise
            self._write_failing_since, self._write_failures = None, 0

        try:
            # Quick retries: the store must converge within ~1 s of an outage ending. A
            # failed attempt is cheap: a full reconcile reads the store before Docker.
            self._retry.call("reconcile", attempt, retry_on=Exception, max_wait=0.5, every=False)
        except Stopped:
            return
        except TakenOverError as exc:
            log.error("this host name was taken over by another daemon; stopping",  # noqa: TRY400 - no traceback wanted
                      problem=str(exc))
            self.taken_over = True
            self.exit_code = 1
            self.stop.set()

    def _write_failed(self, exc: Exception) -> None:
        if self._write_failing_since is None:
            self._write_failing_since = time.monotonic()
        self._write_failures += 1
        self._last_write_error = str(exc)[:300] or repr(exc)

    def _attempt(self, work: Work) -> None:
        if not self.reconciler.lease or self.reconciler.lease in work.lost_leases:
            self.reconciler.lease = self.store.grant_lease(self.cfg.ttl)
            self.lease_alive = True
            self.store_problem = None
            self.metrics.lease_refreshed(self.cfg.ttl)
            work.lost_leases.clear()
            work.full = True
            log.info("lease granted", lease=f"{self.reconciler.lease:x}", ttl=self.cfg.ttl)
        if work.full:
            self.reconciler.full()
            self._take_over()
        else:
            self.reconciler.sync(work.containers)
        now = time.monotonic()
        for at in work.event_times.values():
            self.metrics.latency.observe(max(0.0, now - at))

    def health_problem(self) -> str | None:
        """Why this daemon is not doing its job right now, or None when it is (/healthz)."""
        if self.thread_failure is not None:
            return self.thread_failure
        since = self._write_failing_since
        if since is not None and time.monotonic() - since > WRITE_FAILURE_BOUND:
            return (f"store writes failing for {time.monotonic() - since:.0f}s "
                    f"({self._write_failures} attempts): {self._last_write_error}")
        if not self.events_connected:
            return "docker event stream not connected"
        if self.store_problem is not None:
            return self.store_problem
        if not self.lease_alive:
            return "no live lease"
        return None

    def _take_over(self) -> None:
        """Revoke a crashed run's lease once our own entries are written, so every entry
        that is still wanted stays visible and only stale ones vanish."""
        old = self._old_lease
        if old and old != self.reconciler.lease:
            self.store.revoke_lease(old)
            log.info("revoked the lease of a previous run", lease=f"{old:x}")
        self._old_lease = self.reconciler.adopt = None

    def _host_record(self, lease: int) -> str:
        return json.dumps({
            "version": 1,
            "hostname": self.cfg.policy.hostname,
            "address": self.cfg.policy.host_ip,
            "lease": f"{lease:x}",
            "ttl": self.cfg.ttl,
            "registrator_version": __version__,
            "started_at": self.started_at,
            "labels": dict(self.cfg.host_labels),
            "instance": self._instance.as_record() if self._instance is not None else None,
        }, sort_keys=True)

def _monotonic_at(event_time: float | None) -> float | None:
    """An event's wall-clock time as a monotonic one: a clock step between Docker's stamp and
    now is clamped, not recorded as hours of latency."""
    if event_time is None:
        return None
    transit = min(max(0.0, time.time() - event_time), _MAX_TRANSIT)
    return time.monotonic() - transit
