"""Putting a rendered file in place safely: stage it next to DEST, check the staged copy, then
swap it in atomically, or rewrite DEST itself for single-file bind mounts, whose inode must
stay. A DEST that is a symlink is followed: its target is what gets replaced, the link stays
(consul-template does the same). Every failure leaves the last good file and is one Outcome,
never an exception."""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import tempfile
from collections.abc import Collection
from pathlib import Path

from registrator.consumers.process import DEFAULT_TIMEOUT, Outcome, run_command

__all__ = ["DEFAULT_TIMEOUT", "Outcome", "holds", "install", "run_command",
           "settle_mode"]


def holds(dest: str, data: bytes) -> bool:
    """Whether DEST holds exactly `data`, read a chunk at a time: a rendered file may be
    big, and reading DEST whole (and decoding it) cost two more copies of it."""
    try:
        with Path(dest).open("rb") as current:
            if os.fstat(current.fileno()).st_size != len(data):
                return False
            view = memoryview(data)
            while chunk := current.read(1 << 20):
                if view[:len(chunk)] != chunk:
                    return False
                view = view[len(chunk):]
            return not view
    except OSError:
        return False


def install(text: str | bytes, dest: str, *,  # noqa: PLR0913 - one argument per setting
            check_cmd: str | None, in_place: bool, mode: int | None,
            timeout: float = DEFAULT_TIMEOUT, secret: bool = False,
            owner: int | None = None, group: int | None = None,
            secrets: Collection[str] = ()) -> Outcome:
    """Stage, check, swap. On any failure DEST keeps its last good content and the staged
    file is removed. A file that holds a decrypted value (`secret`) is 0600 unless `mode`
    says otherwise, and gets that mode before any of its bytes are written; otherwise DEST's
    own mode is kept. DEST's owner and group are kept unless given. `secrets` are masked in
    the check's output."""
    target = Path(os.path.realpath(dest))  # a symlink's target is what gets replaced
    data = text.encode("utf-8") if isinstance(text, str) else text
    staged: str | None = None
    try:
        final_mode = _mode_for(target, mode, secret)
        # mkstemp makes the file 0600: no secret byte is ever readable by others.
        fd, staged = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                      dir=target.parent)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(staged, final_mode)  # noqa: PTH101
        _chown(Path(staged), target, owner, group)
        if check_cmd:
            checked = run_command(check_cmd.replace("{src}", shlex.quote(staged)), timeout,
                                  secrets)
            if not checked.ok:
                return Outcome(ok=False, detail=f"check failed: {checked.detail}")
        if in_place:
            # The staged copy proved the content fits; removing it gives its room to DEST.
            os.unlink(staged)  # noqa: PTH108
            staged = None
            explicit = mode is not None or secret
            return _rewrite(target, data, final_mode if explicit else None, owner, group)
        Path(staged).replace(target)
        staged = None
    except OSError as exc:
        return Outcome(ok=False, detail=f"cannot write {dest}: {_why(exc)}")
    finally:
        if staged is not None:
            with contextlib.suppress(OSError):
                Path(staged).unlink()
    return Outcome(ok=True)


def settle_mode(dest: str, mode: int | None, secret: bool) -> str | None:
    """An unchanged DEST gets the mode a new one would (`mode`, or 0600 once it holds a
    decrypted value: a password moved from plain to encrypted renders the same text); the
    problem as text when it cannot."""
    if mode is None and not secret:
        return None
    wanted = mode if mode is not None else 0o600
    try:
        if os.stat(dest).st_mode & 0o7777 != wanted:  # noqa: PTH116
            os.chmod(dest, wanted)  # noqa: PTH101
    except OSError as exc:
        return f"cannot set the mode of {dest}: {_why(exc)}"
    return None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


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


def _rewrite(target: Path, data: bytes, mode: int | None, owner: int | None,
             group: int | None) -> Outcome:
    """DEST rewritten in place (same inode: a single-file bind mount, docker-gen #629, sees
    the new content). Mode and owner are set before the first byte. Not atomic, which is the
    price of that: a write that fails half-way (a full disk) puts the old content back."""
    existed = target.exists()
    fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if mode is not None or not existed:
            os.fchmod(fd, 0o644 if mode is None else mode)
        if owner is not None or group is not None:
            os.fchown(fd, -1 if owner is None else owner, -1 if group is None else group)
        old = _read_all(fd)
        try:
            _overwrite(fd, data)
        except OSError as exc:
            return Outcome(ok=False, detail=f"cannot write {target}: {_why(exc)}; "
                                            f"{_restore(fd, old)}")
    finally:
        os.close(fd)
    return Outcome(ok=True)


def _overwrite(fd: int, data: bytes) -> None:
    """`data` from offset 0, the rest cut off, on disk, and the length checked."""
    os.lseek(fd, 0, os.SEEK_SET)
    _write_all(fd, data)
    os.ftruncate(fd, len(data))
    os.fsync(fd)
    if os.fstat(fd).st_size != len(data):
        raise OSError(errno.EIO, "DEST's length after the write is not the content's")


def _restore(fd: int, old: bytes) -> str:
    """The old content back (it fitted before, and its blocks are still allocated)."""
    try:
        _overwrite(fd, old)
    except OSError as exc:
        return f"restoring the last good content failed too ({_why(exc)}): DEST is damaged"
    return "the last good content was put back"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
