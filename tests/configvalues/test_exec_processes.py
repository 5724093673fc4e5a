"""`config exec`'s processes (issue 21, envconsul's and tini's role): the program's children
stop with it on a restart and on a stop, a program that ignores SIGTERM is killed after
--kill-timeout on a stop too, the program does not outlive a SIGKILLed exec, and orphans
are reaped when exec is PID 1. Real processes, checked through /proc."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from config_support import clean_env, exec_cmd
from harness import free_port, terminate, wait_until


def state(pid: int) -> str | None:
    """The /proc state letter of `pid`, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rpartition(")")[2].split()[0]


def alive(pid: int) -> bool:
    return state(pid) not in (None, "Z", "X")


def children(pid: int) -> list[int]:
    """Every live process whose parent is `pid`, zombies included."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """pids a test saw; whatever still runs at the end is killed (and the test failed)."""
    seen: list[int] = []
    yield seen
    for pid in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def start(etcd, prefix: str, *options: str, program: list[str],
          wrapper: list[str] | None = None) -> subprocess.Popen[bytes]:
    """exec, its stderr in the test's output (no pipe to leave unread)."""
    return subprocess.Popen([*(wrapper or []), *exec_cmd(etcd.endpoint, prefix, "shop",
                                                         *options, program=program)],
                            env=clean_env(), stdout=subprocess.DEVNULL)


def family(log: Path) -> str:
    """sh that starts a background child (recording both pids, child first) and waits."""
    return f"sleep 1000 & echo $! >> {log}; echo $$ >> {log}; wait"


def test_a_restart_stops_the_program_s_children_too(config, etcd, prefix, tmp_path,
                                                     leftovers):
    log = tmp_path / "pids"
    config("set", "shop", "db.url", "one")
    proc = start(etcd, prefix, "--watch", "--interval", "100ms", "--wait", "100ms:1s",
                 "--kill-timeout", "2s", program=["sh", "-c", family(log)])
    try:
        first = wait_until(lambda: pids(log)[:2] if len(pids(log)) >= 2 else None,
                           timeout=20, message="the program and its child")
        leftovers.extend(first)
        config("set", "shop", "db.url", "two")
        second = wait_until(lambda: pids(log)[2:4] if len(pids(log)) >= 4 else None,
                            timeout=20, message="the restart")
        leftovers.extend(second)
        # The old program's child held the old value: it is gone, not left to pile up.
        wait_until(lambda: not any(alive(p) for p in first), timeout=10,
                   message="the old program and its child to be gone")
        assert all(alive(p) for p in second)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        wait_until(lambda: not any(alive(p) for p in second), timeout=10,
                   message="the program's child to stop with exec")
    finally:
        terminate(proc)


def test_a_stop_kills_a_program_that_ignores_sigterm(etcd, prefix, tmp_path, leftovers):
    log = tmp_path / "pids"
    program = ["sh", "-c", f'trap "" TERM; echo $$ >> {log}; while :; do sleep 0.05; done']
    proc = start(etcd, prefix, "--kill-timeout", "1s", program=program)
    try:
        pid = wait_until(lambda: pids(log), timeout=20, message="the program")[0]
        leftovers.append(pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGKILL
        wait_until(lambda: not alive(pid), timeout=10, message="the program to be killed")
    finally:
        terminate(proc)


def test_the_program_does_not_outlive_a_killed_exec(etcd, prefix, tmp_path, leftovers):
    log = tmp_path / "pids"
    proc = start(etcd, prefix, program=["sh", "-c", f"echo $$ >> {log}; exec sleep 1000"])
    try:
        pid = wait_until(lambda: pids(log), timeout=20, message="the program")[0]
        leftovers.append(pid)
        proc.kill()
        proc.wait(timeout=10)
        wait_until(lambda: not alive(pid), timeout=10,
                   message="the program to die with exec")
    finally:
        terminate(proc)


def can_unshare() -> bool:
    """Whether this machine lets us make a PID namespace (root, or a privileged container)."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                          capture_output=True, timeout=30, check=False)
    return done.returncode == 0


@pytest.mark.skipif(not can_unshare(), reason="needs unshare with PID namespaces")
def test_as_pid_1_exec_reaps_orphans(etcd, prefix, tmp_path):
    done = tmp_path / "orphan-done"
    # The subshell exits at once: its `sh` is re-parented to PID 1, exec, and must be reaped
    # when it ends, not left a zombie. (pids inside the namespace mean nothing out here.)
    program = ["sh", "-c", f"(sh -c 'sleep 0.2; touch {done}' &); exec sleep 1000"]
    proc = start(etcd, prefix, program=program,
                 wrapper=["unshare", "--pid", "--fork", "--mount-proc"])
    exec_pid = 0
    try:
        exec_pid = wait_until(lambda: children(proc.pid), timeout=20, message="exec")[0]
        wait_until(done.exists, timeout=20, message="the orphan to finish")
        # Final state: exec's one child is the program, running; the orphan is reaped.
        only = wait_until(lambda: children(exec_pid) if len(children(exec_pid)) == 1
                          and alive(children(exec_pid)[0]) else None, timeout=20,
                          message="exec's only child to be the running program")
        assert state(only[0]) == "S"
    finally:
        # exec is the namespace's PID 1: when it ends, the kernel ends all the rest.
        # unshare does not pass signals on: exec is told directly.
        if exec_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(exec_pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        terminate(proc)


@pytest.mark.skipif(not can_unshare(), reason="needs unshare with PID namespaces")
def test_as_pid_1_a_stop_ends_the_retries_at_start(prefix, tmp_path):
    """PID 1 gets no signal it has no handler for: while exec retried an unreachable store
    at start (--retry-for), `docker stop`'s SIGTERM was ignored. It ends exec at once."""
    err = tmp_path / "exec.err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc",
             *exec_cmd(f"http://127.0.0.1:{free_port()}", prefix, "shop", "--retry-for",
                       "10m", "--etcd-timeout", "500ms", program=["true"])],
            env=clean_env(), stdout=subprocess.DEVNULL, stderr=stderr)
    exec_pid = 0
    try:
        exec_pid = wait_until(lambda: children(proc.pid), timeout=20, message="exec")[0]
        wait_until(lambda: "retrying" in err.read_text(), timeout=30,
                   message="exec to say it retries")
        os.kill(exec_pid, signal.SIGTERM)
        wait_until(lambda: not alive(exec_pid), timeout=20,
                   message="exec (PID 1) to end on SIGTERM")
    finally:
        if exec_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(exec_pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        terminate(proc)
    assert "Traceback" not in err.read_text()
