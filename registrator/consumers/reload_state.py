"""A reload is owed from the moment a new DEST is about to be swapped in until a reload
succeeds. The debt is a marker file beside DEST (`.<name>.reload-pending`), written before
the swap, so a failed reload survives what memory does not: a second `--once`, a restart, a
crash between swap and reload, and SIGHUP (which builds its templates afresh)."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path


def marker(dest: str) -> Path:
    path = Path(dest)
    return path.with_name(f".{path.name}.reload-pending")


def owed(dest: str) -> bool:
    try:
        return marker(dest).is_file()
    except OSError:
        return False


def owe(dest: str) -> str | None:
    """Record the debt; the problem as text when it could not be written (the debt then
    lives in memory only, as before). The marker is always a new file of our own: whoever
    can write beside DEST could have put a symlink there, which render (often root) must
    neither follow into a file to truncate nor to create."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    settle(dest)
    try:
        fd = os.open(marker(dest), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            # The time only: the reload command may hold credentials.
            out.write(f"a reload has been owed since {when}\n")
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def settle(dest: str) -> None:
    with contextlib.suppress(OSError):
        marker(dest).unlink(missing_ok=True)
