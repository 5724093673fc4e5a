"""What `render` keeps up to date: one job per template, from flags or a TOML file of
[[template]] tables (src, dest, check_cmd, reload_cmd, wait, in_place, mode, owner, group)."""

from __future__ import annotations

import grp
import pwd
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registrator.consumers.debounce import DEFAULT_WAIT, parse_wait
from registrator.errors import ConfigError

KEYS = {"src", "dest", "check_cmd", "reload_cmd", "wait", "in_place", "mode",
        "reload_container", "reload_signal", "owner", "group"}


@dataclass(frozen=True, slots=True)
class Job:
    src: str
    dest: str
    check_cmd: str | None = None
    reload_cmd: str | None = None
    wait: tuple[float, float] = (0.2, 2.0)
    in_place: bool = False
    mode: int | None = None
    reload_container: str | None = None  # LABEL=VALUE: signal those containers after a change
    reload_signal: str = "HUP"
    owner: int | None = None  # uid DEST gets; None: DEST's own (kept), or ours for a new one
    group: int | None = None

    @property
    def reload_key(self) -> str:
        """What a reload does, as text; templates with equal keys reload once together."""
        parts = [self.reload_cmd or ""]
        if self.reload_container:
            parts.append(f"SIG{self.reload_signal} to containers labelled "
                         f"{self.reload_container}")
        return "; ".join(p for p in parts if p)


def parse_mode(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigError(f"--mode {text!r}: expected an octal mode such as 0644") from None
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"--mode {text!r}: expected an octal mode such as 0644")
    return mode


def parse_owner(text: str | None, flag: str) -> int | None:
    """A user (--owner) or group (--group) name or number, as its id."""
    if text is None or text == "":
        return None
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid if flag == "--owner" else grp.getgrnam(text).gr_gid
    except KeyError:
        what = "user" if flag == "--owner" else "group"
        raise ConfigError(f"{flag} {text!r}: no such {what}") from None


def job(src: str, dest: str, *,  # noqa: PLR0913 - one argument per template setting
        check_cmd: str | None = None, reload_cmd: str | None = None,
        wait: str = DEFAULT_WAIT, in_place: bool = False, mode: str | None = None,
        reload_container: str | None = None, reload_signal: str = "HUP",
        owner: str | None = None, group: str | None = None) -> Job:
    if not Path(src).is_file():
        raise ConfigError(f"template {src!r} is not a readable file")
    try:
        where = Path(dest).resolve().parent
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on the way (pathlib's)
        where = None
    if where is None or not where.is_dir():
        raise ConfigError(f"the directory of dest {dest!r} does not exist (or its path "
                          "is a symlink loop)")
    if reload_container is not None and "=" not in reload_container.strip("="):
        raise ConfigError(f"--reload-container {reload_container!r}: expected LABEL=VALUE")
    signal_name = reload_signal.upper().removeprefix("SIG")
    if not signal_name.isalnum():
        raise ConfigError(f"--reload-signal {reload_signal!r}: expected a name such as HUP")
    return Job(src, dest, check_cmd or None, reload_cmd or None, parse_wait(wait), in_place,
               parse_mode(mode), reload_container or None, signal_name,
               parse_owner(owner, "--owner"), parse_owner(group, "--group"))


def load_config(path: str) -> list[Job]:
    """Jobs from a TOML file; ConfigError naming the file and the table when wrong."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path!r}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path!r}: {exc}") from None
    tables = data.get("template")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"--config {path!r}: needs at least one [[template]] table")
    base = Path(path).resolve().parent
    return [_table_job(table, i, base, path) for i, table in enumerate(tables, start=1)]


def _table_job(table: Any, number: int, base: Path, path: str) -> Job:
    where = f"--config {path!r}, [[template]] #{number}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: not a table")
    unknown = set(table) - KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("src", "dest"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"{where}: {key} must be a path")
    for key in ("check_cmd", "reload_cmd", "wait", "mode", "reload_container", "reload_signal",
                "owner", "group"):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    if not isinstance(table.get("in_place", False), bool):
        raise ConfigError(f"{where}: in_place must be true or false")
    try:
        # Relative paths are relative to the config file, not to wherever render started.
        return job(str(base / table["src"]), str(base / table["dest"]),
                   check_cmd=table.get("check_cmd"), reload_cmd=table.get("reload_cmd"),
                   wait=table.get("wait", DEFAULT_WAIT), in_place=table.get("in_place", False),
                   mode=table.get("mode"), reload_container=table.get("reload_container"),
                   reload_signal=table.get("reload_signal", "HUP"), owner=table.get("owner"),
                   group=table.get("group"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
