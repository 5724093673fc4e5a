"""Putting a rendered file in place safely: stage it next to DEST, check the staged copy, then
swap it in atomically (or rewrite DEST itself for single-file bind mounts, whose inode must
stay), and run commands through /bin/sh with a timeout."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    detail: str = ""


def run_command(cmd: str, timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    """Run `cmd` through /bin/sh -c; failure carries the exit status and its last output line."""
    try:
        done = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, timeout=timeout,  # noqa: S603
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Outcome(ok=False, detail=f"timed out after {timeout:g}s: {cmd}")
    except OSError as exc:
        return Outcome(ok=False, detail=f"could not run {cmd!r}: {exc.strerror}")
    if done.returncode == 0:
        return Outcome(ok=True)
    output = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
    last = output[-1][:300] if output else "no output"
    return Outcome(ok=False, detail=f"exit {done.returncode}: {last}")


def current_text(dest: str) -> str | None:
    try:
        return Path(dest).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def install(text: str, dest: str, *,  # noqa: PLR0913 - one argument per setting
            check_cmd: str | None, in_place: bool, mode: int | None,
            timeout: float = DEFAULT_TIMEOUT, secret: bool = False,
            owner: int | None = None, group: int | None = None) -> Outcome:
    """Stage, check, swap. On any failure DEST is untouched and the staged file removed.
    A file that holds a decrypted value (`secret`) is 0600 unless `mode` says otherwise;
    otherwise DEST's own mode is kept. DEST's owner and group are kept unless given."""
    target = Path(dest)
    fd, staged = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                  dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        final_mode = _mode_for(target, mode, secret)
        os.chmod(staged, final_mode)  # noqa: PTH101
        _chown(Path(staged), target, owner, group)
        if check_cmd:
            checked = run_command(check_cmd.replace("{src}", shlex.quote(staged)), timeout)
            if not checked.ok:
                return Outcome(ok=False, detail=f"check failed: {checked.detail}")
        if in_place:
            _rewrite(target, text)
            if mode is not None or secret:
                target.chmod(final_mode)
            if owner is not None or group is not None:
                os.chown(target, -1 if owner is None else owner, -1 if group is None else group)
        else:
            Path(staged).replace(target)
    except OSError as exc:
        return Outcome(ok=False, detail=f"cannot write {dest}: {exc.strerror}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(staged).unlink()
    return Outcome(ok=True)


def _mode_for(target: Path, mode: int | None, secret: bool) -> int:
    if mode is not None:
        return mode
    if secret:
        return 0o600  # whatever DEST had: it now holds a decrypted value
    try:
        return target.stat().st_mode & 0o7777  # keep what the operator set on DEST
    except FileNotFoundError:
        return 0o644


def _chown(staged: Path, target: Path, owner: int | None, group: int | None) -> None:
    """The owner asked for, else DEST's own (a rename would otherwise hand DEST to us). Only
    an explicit --owner/--group that cannot be set is an error."""
    try:
        current = target.stat()
        uid, gid = current.st_uid, current.st_gid
    except FileNotFoundError:
        uid = gid = -1
    uid = owner if owner is not None else uid
    gid = group if group is not None else gid
    if (uid, gid) == (-1, -1):
        return
    try:
        os.chown(staged, uid, gid)
    except PermissionError:
        if owner is not None or group is not None:
            raise


def _rewrite(target: Path, text: str) -> None:
    # Same inode: a single-file bind mount (docker-gen #629) sees the new content. Not
    # atomic, which is the price of that; the check already ran on the staged copy.
    with target.open("r+" if target.exists() else "w", encoding="utf-8") as out:
        out.write(text)
        out.truncate()
        out.flush()
        os.fsync(out.fileno())
