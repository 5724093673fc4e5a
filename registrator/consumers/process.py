"""Running check and reload commands through /bin/sh -c. A command is done when it exits,
not when its pipes close (a reload that starts a background child leaves it holding them);
a timeout ends its whole process group; its output is kept bounded (head and tail, whatever
it prints); and a failure reports the lines that say why, with the caller's values masked."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import IO

from registrator.configvalues.environment import program_base_env
from registrator.consumers.ls import printable
from registrator.consumers.masking import mask

DEFAULT_TIMEOUT = 30.0
HEAD = TAIL = 32 * 1024  # bytes of output kept from each end
REASON_LINES = 8
LINE_CHARS = 300
_CHUNK = 64 * 1024
STOP_GRACE = 5.0  # after a stop, a command that ignores SIGTERM gets SIGKILL this much later
# Commands running now, by pid (= their process group), and whether render is stopping. Each
# command has a process group of its own (so a timeout can end all of it), which also means
# a signal to render does not reach it: stop_all() passes the stop on. Set from a signal
# handler, so no lock (a handler that waits for a lock its own thread holds never returns).
_running: set[int] = set()


class _Stop:
    at: float | None = None  # when stop_all() was called


# Lines that say why: HAProxy's [ALERT], nginx's [emerg], and the words most tools use.
# Store passwords come to render through its environment (cli.py: REGISTRATOR_ETCD_PASSWORD,
# REGISTRATOR_ZOOKEEPER_PASSWORD); the commands it runs (haproxy, nginx, a user's script) are
# another program and get none of them.
_PASSWORD_VARIABLE = re.compile(r"REGISTRATOR_\w*PASSWORD\w*", re.IGNORECASE)
_WHY = re.compile(r"\[(alert|emerg|crit|error)\]|\b(error|errors|fatal|failed|invalid|"
                  r"denied|cannot|can't|unknown|not found|no such)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str = ""


class Capture:
    """The first `head` and last `tail` bytes of a stream, and how many came in all."""

    def __init__(self, head: int = HEAD, tail: int = TAIL) -> None:
        self.head_limit, self.tail_limit = head, tail
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.tail_limit:
                del self.tail[:len(self.tail) - self.tail_limit]

    def text(self) -> str:
        head, tail = bytes(self.head), bytes(self.tail)
        if self.total > len(head) + len(tail):
            # Whole lines only on each side of the cut, so no value is cut in two there
            # (half a secret would escape the masking).
            head = head[:head.rfind(b"\n") + 1]
            tail = tail[tail.find(b"\n") + 1:] if b"\n" in tail else b""
            left_out = self.total - len(head) - len(tail)
            return (head.decode(errors="replace") + f"[{left_out} bytes of output left out]\n"
                    + tail.decode(errors="replace"))
        return (head + tail).decode(errors="replace")


def run_command(cmd: str, timeout: float = DEFAULT_TIMEOUT,
                secrets: Collection[str] = ()) -> Outcome:
    """Run `cmd`; a failure's detail is its exit status (or the timeout) and the lines of
    its output that say why, every form of every value in `secrets` masked."""
    if _Stop.at is not None:
        return Outcome(ok=False, detail="not run: render is stopping")
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", cmd], stdin=subprocess.DEVNULL,  # noqa: S603
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=program_base_env(os.environ, ()),
                                start_new_session=True)  # its own group: a timeout ends all
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the command (TOML allows it)
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        return Outcome(ok=False, detail=f"could not run {mask(cmd, secrets)!r}: {why}")
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above
    capture = Capture()
    _running.add(proc.pid)
    try:
        if _Stop.at is not None:  # a stop that came while the command was starting
            _signal_group(proc.pid, signal.SIGTERM)
        timed_out = not _wait(proc, proc.stdout, capture, timeout)
    finally:
        _running.discard(proc.pid)
    text = mask(capture.text(), secrets)
    if _Stop.at is not None and (timed_out or proc.returncode != 0):
        return Outcome(ok=False, detail="ended: render is stopping")
    if timed_out:
        why = reason_lines(text)
        return Outcome(ok=False, detail=f"timed out after {timeout:g}s: {mask(cmd, secrets)}"
                                        + (f": {why}" if capture.total else ""))
    if proc.returncode == 0:
        return Outcome(ok=True)
    return Outcome(ok=False, detail=f"exit {proc.returncode}: {reason_lines(text)}")


def stop_all() -> bool:
    """render is stopping: SIGTERM to every running command's process group (SIGKILL
    STOP_GRACE later if it is still there), and no new command starts. True when a command
    was running."""
    if _Stop.at is None:
        _Stop.at = time.monotonic()
    running = list(_running)
    for pid in running:
        _signal_group(pid, signal.SIGTERM)
    return bool(running)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def command_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without render's own credentials."""
    return {k: v for k, v in environ.items() if not _PASSWORD_VARIABLE.fullmatch(k)}


def reason_lines(text: str) -> str:
    """The lines that say why, at most REASON_LINES of LINE_CHARS each, joined by ' | '.
    Without any such line: the first line and the last two."""
    lines = [printable(line.strip()) for line in text.splitlines() if line.strip()]
    if not lines:
        return "no output"
    why = [line for line in lines if _WHY.search(line)]
    if not why:
        why = list(dict.fromkeys([lines[0], *lines[-2:]]))
    if len(why) > REASON_LINES:  # the first ones name the culprit; the last one sums up
        why = [*why[:REASON_LINES - 2], f"({len(why) - REASON_LINES + 1} more lines)", why[-1]]
    return " | ".join(line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + "..."
                      for line in why)


def _wait(proc: subprocess.Popen[bytes], out: IO[bytes], capture: Capture,
          timeout: float) -> bool:
    """Read `out` into `capture` until `proc` exits; False when it ran out of time (then
    its whole process group is killed)."""
    fd = out.fileno()
    os.set_blocking(fd, False)
    exit_fd = _pidfd(proc.pid)
    deadline = time.monotonic() + timeout
    open_out, timed_out = True, False
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        if exit_fd is not None:
            selector.register(exit_fd, selectors.EVENT_READ)
        try:
            while proc.poll() is None:
                if _Stop.at is not None:
                    deadline = min(deadline, _Stop.at + STOP_GRACE)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                    timed_out = True
                    break
                # Without a pidfd to say "exited", look again every 50 ms; with one, every
                # half second still, to see a stop.
                wait = min(remaining, 0.5 if exit_fd is not None else 0.05)
                for key, _ in selector.select(wait):
                    if key.fd == fd and not _read(fd, capture):
                        selector.unregister(fd)
                        open_out = False
        finally:
            if exit_fd is not None:
                os.close(exit_fd)
    if open_out and _drain_ready(fd, capture):
        _drop_later(out)  # a background child holds the pipe: drain it until it closes
    else:
        out.close()
    return not timed_out


def _read(fd: int, capture: Capture) -> bool:
    """One read; False at EOF."""
    try:
        data = os.read(fd, _CHUNK)
    except BlockingIOError:
        return True
    capture.add(data)
    return bool(data)


def _drain_ready(fd: int, capture: Capture) -> bool:
    """What the command wrote before it exited; True when the pipe is still open."""
    for _ in range(64):  # bounded: a child still writing fast must not keep us here
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        capture.add(data)
    return True


def _drop_later(out: IO[bytes]) -> None:
    """Read and drop what a leftover child writes until it closes the pipe, so its writes
    never fail (SIGPIPE would kill it); one thread per such child, ended by its EOF."""
    def drain() -> None:
        with out:
            os.set_blocking(out.fileno(), True)
            while os.read(out.fileno(), _CHUNK):
                pass

    threading.Thread(target=drain, name="drain-leftover-output", daemon=True).start()


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
