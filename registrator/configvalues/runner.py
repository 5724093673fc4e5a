"""`config exec` (SPEC §9, envconsul's role): run a program with the app's resolved values in
its environment; with watching, restart it (or signal it) when they change, debounced.
Signals sent to exec are passed on to the program; exec ends with the program's exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import structlog

from registrator.errors import RegistratorError

log = structlog.get_logger("registrator.config.exec")

# Passed on to the program. After TERM, INT or QUIT the program is expected to stop, so it is
# not restarted any more; exec ends once it has.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)
STOPPING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
FROM_TERMINAL = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH})
_TICK = 0.05  # how often the program's state is looked at; signals are passed on at once
EXIT_NOT_FOUND, EXIT_NOT_RUNNABLE = 127, 126  # what a shell answers


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    interval: float = 1.0  # between two reads of the store
    quiet: float = 0.5  # a change is applied after this long without another one...
    longest: float = 5.0  # ...or this long after the first change, whichever comes first
    signal: int | None = None  # None: restart the program; else send it this signal
    grace: float = 10.0  # after SIGTERM for a restart, SIGKILL comes this much later


class ProgramError(RegistratorError):
    """The program could not be started at all; `code` is what a shell would exit with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def exit_code(returncode: int) -> int:
    """A program killed by signal N ends exec with 128+N, as a shell reports it."""
    return 128 - returncode if returncode < 0 else returncode


def _in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):  # no terminal, or stdin closed or replaced
        return False


class Runner:
    """`load()` reads the values as environment variables; it raises RegistratorError when
    they cannot be read. `base_env` keeps what the store does not set."""

    def __init__(self, argv: Sequence[str], base_env: Mapping[str, str],
                 load: Callable[[], dict[str, str]], watch: WatchPolicy | None = None) -> None:
        self.argv = list(argv)
        self.base_env = dict(base_env)
        self.load = load
        self.watch = watch
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.restarting = False
        self.kill_at: float | None = None
        self.read_failing = False
        self.interactive = _in_terminal_foreground()

    # -- the program -----------------------------------------------------------------------

    def _start(self, values: Mapping[str, str]) -> None:
        try:
            # Not interactive: the program gets a process group of its own, so every signal
            # reaches it exactly once, through exec. At a terminal it stays in exec's
            # foreground group, where it may read the terminal and gets Ctrl-C from it.
            self.child = subprocess.Popen(  # noqa: S603 - the command the user gave
                self.argv, env={**self.base_env, **values},
                process_group=None if self.interactive else 0)
        except FileNotFoundError:
            raise ProgramError(f"{self.argv[0]!r}: command not found", EXIT_NOT_FOUND) from None
        except PermissionError:
            raise ProgramError(f"{self.argv[0]!r}: permission denied",
                               EXIT_NOT_RUNNABLE) from None
        except OSError as exc:
            raise ProgramError(f"{self.argv[0]!r}: {exc.strerror}", EXIT_NOT_RUNNABLE) from None
        log.info("program started", pid=self.child.pid, variables=sorted(values))
        if self.stopping:  # told to stop while there was no program to tell
            self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.child is not None and self.child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(sig)

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        if sig in STOPPING:
            self.stopping = True
        if not (self.interactive and sig in FROM_TERMINAL):
            self._signal(sig)  # the terminal sent those to the program itself

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        values = self.load()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED}
        try:
            self._start(values)
            return self._loop(values)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self, current: dict[str, str]) -> int:
        assert self.child is not None  # noqa: S101 - started by run()
        pending: dict[str, str] | None = None
        first_change = last_change = 0.0
        next_read = time.monotonic() + (self.watch.interval if self.watch else 0.0)
        while True:
            code = self.child.poll()
            if code is not None:
                if not (self.restarting and not self.stopping):
                    log.info("program exited", code=code)
                    return exit_code(code)
                self.restarting, self.kill_at = False, None
                self._start(current)
            elif self.kill_at is not None and time.monotonic() >= self.kill_at:
                log.warning("program ignored SIGTERM; killing it", pid=self.child.pid)
                self._signal(signal.SIGKILL)
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
        if self.watch.signal is not None:
            log.info("configuration changed; signalling the program",
                     signal=signal.Signals(self.watch.signal).name)
            self._signal(self.watch.signal)
            return
        log.info("configuration changed; restarting the program", variables=sorted(values))
        self.restarting = True
        self.kill_at = time.monotonic() + self.watch.grace
        self._signal(signal.SIGTERM)


def run_program(argv: Sequence[str], load: Callable[[], dict[str, str]],
                watch: WatchPolicy | None = None) -> int:
    return Runner(argv, os.environ, load, watch).run()
