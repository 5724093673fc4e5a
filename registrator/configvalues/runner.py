"""`config exec` (SPEC §9, envconsul's role): run a program with the app's resolved values in
its environment; with watching, restart it (or signal it) when they change, debounced.
Signals sent to exec are passed on to the program; exec ends with the program's exit code.

A stop or a restart is for the program's whole process group: SIGTERM to the group, SIGKILL
to it after the grace time, and the next program starts only once the group is empty, so no
child of an old program keeps running with old values (issue 21)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import structlog

from registrator.configvalues.process import (
    EXIT_NOT_FOUND,
    EXIT_NOT_RUNNABLE,
    Program,
    ProgramError,
    become_subreaper,
    reap,
    resolve,
)
from registrator.errors import RegistratorError, TransientError

__all__ = ["EXIT_NOT_FOUND", "EXIT_NOT_RUNNABLE", "ProgramError", "Runner", "WatchPolicy",
           "exit_code", "run_program"]

log = structlog.get_logger("registrator.config.exec")

# Passed on to the program. After TERM, INT or QUIT the program is expected to stop, so it is
# not restarted any more; exec ends once it has.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)
STOPPING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
_TICK = 0.05  # how often the program's state is looked at; signals are passed on at once
DEFAULT_GRACE = 10.0
_FIRST_RETRY, _LAST_RETRY = 0.25, 5.0  # backoff while the store is unreachable at start


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    interval: float = 1.0  # between two reads of the store
    quiet: float = 0.5  # a change is applied after this long without another one...
    longest: float = 5.0  # ...or this long after the first change, whichever comes first
    signal: int | None = None  # None: restart the program; else send it this signal
    grace: float = DEFAULT_GRACE  # after SIGTERM for a restart, SIGKILL comes this much later


def exit_code(returncode: int) -> int:
    """A program killed by signal N ends exec with 128+N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


class Runner:
    """`load()` reads the values as environment variables; it raises RegistratorError when
    they cannot be read. `base_env` keeps what the store does not set. `grace`: SIGKILL
    this long after SIGTERM, on a stop as on a restart."""

    def __init__(self, argv: Sequence[str], base_env: Mapping[str, str],  # noqa: PLR0913
                 load: Callable[[], dict[str, str]], watch: WatchPolicy | None = None,
                 grace: float | None = None, retry_for: float = 0.0) -> None:
        self.argv = list(argv)
        self.base_env = dict(base_env)
        self.load = load
        self.watch = watch
        self.grace = grace if grace is not None else (watch.grace if watch else DEFAULT_GRACE)
        self.program: Program | None = None
        self.stopping = False
        self.restarting = False
        self.kill_at: float | None = None
        self.read_failing = False
        self.queued: list[int] = []  # signals for the program, until it runs
        self.retry_for = retry_for

    # -- the program -----------------------------------------------------------------------

    def _start(self, executable: str, values: Mapping[str, str]) -> None:
        if self.program is not None:
            self.program.close()
        self.queued = []  # meant for the program that ended
        self.program = Program(self.argv, executable, {**self.base_env, **values})
        self.kill_at = None
        log.info("program started", pid=self.program.pid, variables=sorted(values))
        if self.stopping:  # told to stop while there was no program to tell
            self._terminate()

    def _terminate(self) -> None:
        """SIGTERM to the program's group; SIGKILL follows after the grace time."""
        if self.program is not None:
            self.program.signal_group(signal.SIGTERM)
            if self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        if sig in STOPPING:
            self.stopping = True
            if self.program is not None and self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace
        if self.program is None:
            return
        self.queued.append(sig)
        self._deliver()

    def _deliver(self) -> None:
        """Pass on the signals received, once the program itself runs (before its execv, a
        signal would end the shim that starts it instead of reaching the program)."""
        if self.program is None or not self.queued or not self.program.started():
            return
        queued, self.queued = self.queued, []
        for sig in queued:
            if sig in STOPPING:
                # The whole group: the program's children hold the same values.
                self.program.signal_group(sig)
            else:
                # Reload-style signals go to the program itself; passing them on to its
                # workers is its own business (a master may take HUP as "restart workers").
                self.program.popen.send_signal(sig)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        # Resolved in exec's own PATH, before any value is applied (issue 21).
        executable = resolve(self.argv[0], self.base_env.get("PATH"))
        # A stop while the store is retried ends exec (128+N): as PID 1, a signal without a
        # handler is ignored, and `docker stop` would wait out --retry-for.
        before = {sig: signal.signal(sig, _stop_now) for sig in STOPPING}
        try:
            values = self._first_load()
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)
        become_subreaper()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}
        try:
            self._start(executable, values)
            return self._loop(executable, values)
        finally:
            if self.program is not None:
                self.program.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _first_load(self) -> dict[str, str]:
        """The values to start with. A store that cannot be reached is retried with backoff
        for `retry_for` seconds (a container often starts before its store answers); any
        other problem, and the last failure, end exec with one line."""
        deadline = time.monotonic() + self.retry_for
        delay = _FIRST_RETRY
        while True:
            try:
                return self.load()
            except TransientError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    if self.retry_for > 0:
                        raise type(exc)(f"{exc} (still, after retrying for "
                                        f"{self.retry_for:g}s)") from None
                    raise
                if delay == _FIRST_RETRY:
                    log.warning("store unreachable; retrying", retry_for=self.retry_for,
                                error=str(exc))
                time.sleep(min(delay, left))
                delay = min(delay * 2, _LAST_RETRY)

    def _ended(self, executable: str, current: dict[str, str]) -> int | None:
        """The program's leader exited: once its group is empty too, restart it or give
        exec's exit code (None while waiting)."""
        assert self.program is not None  # noqa: S101 - started by run()
        code = self.program.popen.returncode
        assert code is not None  # noqa: S101 - only called once it exited
        if self.program.group_alive():
            # Children left behind would keep the old values: they stop with the program.
            if self.kill_at is None:
                log.info("stopping what the program left running", pgid=self.program.pgid)
                self._terminate()
            return None
        if self.restarting and not self.stopping:
            self.restarting = False
            self._start(executable, current)
            return None
        log.info("program exited", code=code)
        return exit_code(code)

    def _loop(self, executable: str, current: dict[str, str]) -> int:
        pending: dict[str, str] | None = None
        first_change = last_change = 0.0
        next_read = time.monotonic() + (self.watch.interval if self.watch else 0.0)
        while True:
            assert self.program is not None  # noqa: S101 - started by run()
            reap(keep=self.program.pid)  # orphans re-parented to exec: no zombies
            self._deliver()
            if self.program.poll() is not None:
                done = self._ended(executable, current)
                if done is not None:
                    return done
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                log.warning("program ignored SIGTERM; killing its process group",
                            pgid=self.program.pgid)
                self.program.signal_group(signal.SIGKILL)
                self.kill_at = None
            now = time.monotonic()
            if self.watch is not None and not self.stopping and now >= next_read:
                next_read = now + self.watch.interval
                fresh = self._read()
                if fresh is not None and fresh != (pending if pending is not None else current):
                    if pending is None:
                        first_change = now
                    pending, last_change = fresh, now
                    if pending == current:
                        pending = None  # changed back before it was applied
            if pending is not None and self.watch is not None and not self.restarting and (
                    now - last_change >= self.watch.quiet
                    or now - first_change >= self.watch.longest):
                current, pending = pending, None
                self._apply(current)
            time.sleep(_TICK)

    def _read(self) -> dict[str, str] | None:
        try:
            values = self.load()
        except RegistratorError as exc:
            # The program keeps running with what it has; the next read tries again. One
            # line per outage, not one per read.
            if not self.read_failing:
                log.warning("cannot read configuration; keeping the program as it is",
                            error=str(exc))
            self.read_failing = True
            return None
        if self.read_failing:
            log.info("configuration readable again")
            self.read_failing = False
        return values

    def _apply(self, values: dict[str, str]) -> None:
        assert self.watch is not None  # noqa: S101 - only called when watching
        assert self.program is not None  # noqa: S101 - started by run()
        if self.watch.signal is not None:
            log.info("configuration changed; signalling the program",
                     signal=signal.Signals(self.watch.signal).name)
            self.queued.append(self.watch.signal)
            self._deliver()
            return
        log.info("configuration changed; restarting the program", variables=sorted(values))
        self.restarting = True
        self._terminate()


def _stop_now(sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + sig)


def run_program(argv: Sequence[str], base_env: Mapping[str, str],  # noqa: PLR0913
                load: Callable[[], dict[str, str]], watch: WatchPolicy | None = None,
                grace: float | None = None, retry_for: float = 0.0) -> int:
    return Runner(argv, base_env, load, watch, grace, retry_for).run()
