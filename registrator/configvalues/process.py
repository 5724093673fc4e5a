"""The program `config exec` runs, as tini and dumb-init run theirs (issue 21): in a process
group of its own, signalled as a group so the children it started get the signal too (they
hold the old values as well), killed by the kernel if exec itself is SIGKILLed
(PR_SET_PDEATHSIG), and with exec as the reaper of whatever it leaves behind (PID 1 in a
container, or a child subreaper elsewhere), so orphans end as reaped processes, not zombies.

Linux-only parts (prctl) are skipped where ctypes cannot find them."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
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
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


_LIBC = _libc() if sys.platform == "linux" else None


def become_subreaper() -> None:
    """Orphaned descendants of the program are re-parented to exec (not to init), which
    reaps them; PID 1 is one already."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def resolve(command: str, path: str | None) -> str:
    """The executable `command` names, looked up in exec's own PATH before any store value
    is applied: the store's PATH must not pick which program runs."""
    if "/" in command:
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


def _take_terminal(fd: int, pgid: int) -> None:
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
        parent = os.getpid()
        terminal = _terminal()

        def in_child() -> None:  # pragma: no cover - runs in the forked child
            # Only async-signal-safe-ish work: a prctl and, at a terminal, one tcsetpgrp.
            if _LIBC is not None:
                _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
                if os.getppid() != parent:  # exec died before the prctl took effect
                    os._exit(EXIT_NOT_RUNNABLE)
            if terminal is not None:
                # The program's group becomes the terminal's foreground group, so Ctrl-C and
                # reads from the terminal go to the program, as under a shell.
                _take_terminal(terminal, os.getpgrp())

        self.terminal = terminal
        try:
            # preexec_fn with threads around: it only calls prctl and tcsetpgrp, which take
            # no lock another thread could hold across the fork.
            self.popen = subprocess.Popen(  # noqa: S603 - the command the user gave
                list(argv), executable=executable, env=dict(env), process_group=0,
                preexec_fn=in_child)  # noqa: PLW1509 - see above
        except FileNotFoundError:
            raise ProgramError(f"{argv[0]!r}: command not found", EXIT_NOT_FOUND) from None
        except PermissionError:
            raise ProgramError(f"{argv[0]!r}: permission denied", EXIT_NOT_RUNNABLE) from None
        except OSError as exc:
            raise ProgramError(f"{argv[0]!r}: {exc.strerror}", EXIT_NOT_RUNNABLE) from None
        self.pid = self.pgid = self.popen.pid

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
