"""The program `config exec` runs, as tini and dumb-init run theirs (issue 21): in a process
group of its own, signalled as a group so the children it started get the signal too (they
hold the old values as well), killed by the kernel if exec itself is SIGKILLed
(PR_SET_PDEATHSIG), and with exec as the reaper of whatever it leaves behind (PID 1 in a
container, or a child subreaper elsewhere), so orphans end as reaped processes, not zombies.

Linux-only parts (prctl) are skipped where ctypes cannot find them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

from registrator.errors import RegistratorError

EXIT_NOT_FOUND, EXIT_NOT_RUNNABLE = 127, 126  # what a shell answers
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class ProgramError(RegistratorError):
    """The program could not be started at all; `code` is what a shell would exit with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)  # python's own process: libc is in it
    except OSError:  # pragma: no cover - a platform without dlopen(NULL)
        return None


_LIBC = _libc() if sys.platform == "linux" else None

# Runs between fork and the program, in a fresh interpreter (no threads): PR_SET_PDEATHSIG,
# and at a terminal the foreground for the program's group, then execv. A preexec_fn would
# do the same inside the forked copy of exec, whose gRPC threads' fork handlers can abort
# the child (seen: SIGABRT, silently, with GRPC_VERBOSITY=NONE).
_SHIM = """
import ctypes, os, signal, sys
parent, ready, terminal = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
executable, argv = sys.argv[4], sys.argv[5:]
os.set_inheritable(ready, False)  # closed by execv: exec learns the program runs
if sys.platform == "linux":
    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(126)
if terminal >= 0:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        os.tcsetpgrp(terminal, os.getpgrp())
    except OSError:
        pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTTOU})
try:
    os.execv(executable, argv)
except OSError as exc:
    sys.stderr.write(f"registrator: error: {argv[0]!r}: {exc.strerror}\\n")
    os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
"""


def become_subreaper() -> None:
    """Orphaned descendants of the program are re-parented to exec (not to init), which
    reaps them; PID 1 is one already."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def resolve(command: str, path: str | None) -> str:
    """The executable `command` names, looked up in exec's own PATH before any store value
    is applied: the store's PATH must not pick which program runs."""
    if "/" in command:
        if not os.path.isfile(command):  # noqa: PTH113 - a path as the user gave it
            raise ProgramError(f"{command!r}: command not found", EXIT_NOT_FOUND)
        if not os.access(command, os.X_OK):
            raise ProgramError(f"{command!r}: permission denied", EXIT_NOT_RUNNABLE)
        return command
    found = shutil.which(command, path=path)
    if found is None:
        raise ProgramError(f"{command!r}: command not found", EXIT_NOT_FOUND)
    return found


def _terminal() -> int | None:
    """stdin's file descriptor when exec runs in its terminal's foreground group."""
    try:
        fd = sys.stdin.fileno()
        return fd if os.tcgetpgrp(fd) == os.getpgrp() else None
    except (OSError, ValueError, AttributeError):  # no terminal, or stdin closed or replaced
        return None


def _take_terminal(fd: int, pgid: int) -> None:  # the shim does the same for the program
    # As a shell does: SIGTTOU blocked, or a background group may not change the terminal's
    # foreground group.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, pgid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Program:
    """One run of the program. `pgid` is its process group (its own pid)."""

    def __init__(self, argv: Sequence[str], executable: str, env: Mapping[str, str]) -> None:
        terminal = _terminal()
        self.terminal = terminal
        # The shim holds `ready`'s write end until its execv closes it: until then a signal
        # for the program would hit the shim, so it waits (see `started`).
        self._ready, ready = os.pipe()
        shim = [sys.executable, "-I", "-S", "-c", _SHIM, str(os.getpid()), str(ready),
                str(-1 if terminal is None else terminal), executable, *argv]
        try:
            self.popen = subprocess.Popen(  # noqa: S603 - the command the user gave
                shim, env=dict(env), process_group=0,
                pass_fds=(ready,) if terminal is None else (ready, terminal))
        except OSError as exc:
            os.close(self._ready)
            raise ProgramError(f"{argv[0]!r}: {exc.strerror}", EXIT_NOT_RUNNABLE) from None
        finally:
            os.close(ready)
        os.set_blocking(self._ready, False)
        self.pid = self.pgid = self.popen.pid
        self._started = False

    def started(self) -> bool:
        """Whether the program itself runs (the shim's execv done), or the shim is gone."""
        if not self._started:
            try:
                os.read(self._ready, 1)
            except BlockingIOError:
                return False
            os.close(self._ready)
            self._started = True
        return True

    def close(self) -> None:
        if not self._started:
            os.close(self._ready)
            self._started = True

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self.terminal is not None:
            _take_terminal(self.terminal, os.getpgrp())  # the terminal back to exec's group
            self.terminal = None
        return code

    def signal_group(self, sig: int) -> None:
        """`sig` to every process of the program's group (the program and its children)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def group_alive(self) -> bool:
        """Whether any process of the program's group still runs (zombies already reaped)."""
        self.poll()
        reap(keep=self.pid if self.popen.returncode is None else None)
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def reap(keep: int | None = None) -> None:
    """Collect every exited child except `keep` (the program, whose status Popen collects):
    orphans re-parented to exec must not stay zombies."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0:
            return
        if info.si_pid == keep:
            return  # the program's own status: Popen.poll() collects it
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, os.WNOHANG)
